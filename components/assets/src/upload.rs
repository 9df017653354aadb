//! An upload in progress (the `upload` resource): bytes are cut into chunks
//! and stored as they arrive, hashed on the way, and the manifest is
//! written last, by `finish`, after the preconditions are checked again
//! against the object as it is then.

use std::cell::RefCell;

use portico_assets_logic::conditional::{Condition, Preconditions};
use portico_assets_logic::layout::{Chunker, upload_id};

use crate::exports::portico::assets::store::{GuestUpload, PutOutcome};
use crate::objects::{self, Manifest, Metadata};
use crate::portico::platform::kv;
use crate::portico::types::http::Problem;
use crate::problems;

/// The request's preconditions on the stored object (owned copies).
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

impl Conditions {
    /// `412` unless the preconditions hold against `current`.
    pub fn check(&self, current: Option<&Manifest>) -> Result<(), Problem> {
        let preconditions = Preconditions {
            if_match: self.if_match.as_deref(),
            if_none_match: self.if_none_match.as_deref(),
            ..Preconditions::default()
        };
        let failed = match current {
            Some(current) => {
                preconditions.evaluate("PUT", &current.etag(), current.modified)
                    != Condition::Proceed
            }
            // Only `If-Match` can fail against an absent object.
            None => preconditions.if_match.is_some(),
        };
        if failed {
            return Err(problems::precondition_failed(
                "the stored asset does not match the request's If-Match or If-None-Match",
            ));
        }
        Ok(())
    }
}

pub struct Upload {
    key: String,
    metadata: RefCell<Option<Metadata>>,
    conditions: Conditions,
    declared: Option<u64>,
    max: u64,
    /// `None` once finished (or failed for good).
    chunker: RefCell<Option<Chunker>>,
}

impl Upload {
    pub fn start(
        key: String,
        metadata: Metadata,
        conditions: Conditions,
        declared: Option<u64>,
        max: u64,
    ) -> Upload {
        let chunker = Chunker::new(upload_id(&key, objects::now()));
        Upload {
            key,
            metadata: RefCell::new(Some(metadata)),
            conditions,
            declared,
            max,
            chunker: RefCell::new(Some(chunker)),
        }
    }

    /// Deletes what was written and ends the upload.
    fn abandon(&self) {
        if let Some(chunker) = self.chunker.borrow_mut().take() {
            objects::delete_chunks(chunker.upload(), chunker.chunks());
        }
    }

    fn finished() -> Problem {
        problems::problem(
            409,
            "upload-finished",
            "Upload already finished",
            "this upload was finished or abandoned; start a new one",
        )
    }
}

fn store_chunk(key: &str, bytes: &[u8]) -> Result<(), Problem> {
    kv::set(key, bytes, None).map_err(problems::storage)
}

impl GuestUpload for Upload {
    fn write(&self, bytes: Vec<u8>) -> Result<(), Problem> {
        let mut slot = self.chunker.borrow_mut();
        let chunker = slot.as_mut().ok_or_else(Upload::finished)?;
        let size = chunker.size() + bytes.len() as u64;
        let result = if size > self.max {
            Err(problems::too_large(
                format!("more than {}", self.max),
                self.max,
            ))
        } else if self.declared.is_some_and(|declared| size > declared) {
            Err(problems::length_mismatch(self.declared.unwrap_or(0), size))
        } else {
            chunker.push(&bytes, store_chunk)
        };
        drop(slot);
        if result.is_err() {
            self.abandon();
        }
        result
    }

    fn finish(&self) -> Result<PutOutcome, Problem> {
        let chunker = self
            .chunker
            .borrow_mut()
            .take()
            .ok_or_else(Upload::finished)?;
        let upload = chunker.upload().to_string();
        // The last chunk, if its store fails, may be there or not: take it
        // back with the others.
        let written_so_far = chunker.chunks() + 1;
        let written = match chunker.finish(store_chunk) {
            Ok(written) => written,
            Err(problem) => {
                objects::delete_chunks(&upload, written_so_far);
                return Err(problem);
            }
        };
        let chunks = written.chunks;
        let commit = || {
            if let Some(declared) = self.declared
                && declared != written.size
            {
                return Err(problems::length_mismatch(declared, written.size));
            }
            let current = objects::load(&self.key)?;
            self.conditions.check(current.as_ref())?;
            let metadata = self
                .metadata
                .borrow_mut()
                .take()
                .ok_or_else(Upload::finished)?;
            let created = current.is_none();
            let stored = objects::commit(&self.key, written.clone(), metadata, current.as_ref())?;
            Ok(PutOutcome {
                created,
                info: crate::info(&stored),
            })
        };
        let outcome = commit();
        if outcome.is_err() {
            objects::delete_chunks(&upload, chunks);
        }
        outcome
    }
}

impl Drop for Upload {
    /// An upload dropped unfinished (the client went away, or a write
    /// failed) takes back its chunks; nothing names them.
    fn drop(&mut self) {
        self.abandon();
    }
}
