//! Work that runs after the response has been sent (WASI Preview 2 lets a
//! handler keep running once the outgoing body is finished), such as a
//! stale-while-revalidate refresh. Runtimes that cut the instance off early
//! only lose the refresh; the next request does it.

use std::cell::RefCell;

type Task = Box<dyn FnOnce()>;

thread_local! {
    static TASKS: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
}

/// Runs `task` once the response is on its way.
pub fn defer(task: impl FnOnce() + 'static) {
    TASKS.with(|tasks| tasks.borrow_mut().push(Box::new(task)));
}

/// Runs (and forgets) every deferred task, in order.
pub fn run() {
    let tasks = TASKS.with(|tasks| std::mem::take(&mut *tasks.borrow_mut()));
    for task in tasks {
        task();
    }
}
