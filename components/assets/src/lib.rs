//! `portico:assets`: an object store for static files in the KV store, served
//! with ETags, conditional and range requests.
//!
//! Imports `portico:platform/{kv,config}`; exports `portico:assets/store`.
//! This crate is the contract's placeholder: every call answers
//! `501 not-implemented` until the asset store is built (tracked separately),
//! so the composition and routing around it are real.

wit_bindgen::generate!({
    path: ["../../wit/types", "../../wit/platform", "../../wit/assets"],
    world: "portico:assets/component",
    generate_all,
});

use exports::portico::assets::store::Guest;
use portico::types::http::{Problem, Request, Response};

struct Assets;

export!(Assets);

fn not_implemented(operation: &str) -> Problem {
    Problem {
        status: 501,
        kind: "not-implemented".into(),
        title: "Not implemented".into(),
        detail: format!("portico:assets/store.{operation} is not implemented yet"),
    }
}

impl Guest for Assets {
    fn serve(_request: Request) -> Result<Response, Problem> {
        Err(not_implemented("serve"))
    }

    fn put(_path: String, _content_type: Option<String>, _body: Vec<u8>) -> Result<(), Problem> {
        Err(not_implemented("put"))
    }

    fn delete(_path: String) -> Result<(), Problem> {
        Err(not_implemented("delete"))
    }

    fn list(_prefix: String) -> Result<Vec<String>, Problem> {
        Err(not_implemented("list"))
    }
}
