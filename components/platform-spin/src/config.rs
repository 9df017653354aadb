//! `portico:platform/config` over Spin variables.

use spin_sdk::variables;

use crate::Adapter;
use crate::exports::portico::platform::config::Guest;
use crate::exports::portico::platform::types::Error;

impl Guest for Adapter {
    /// Spin's HTTP trigger sets it (appending its value after any the
    /// client sent, so the last value is Spin's).
    fn client_address_header() -> Option<String> {
        Some("spin-client-addr".to_string())
    }

    fn get(name: String) -> Result<Option<String>, Error> {
        match variables::get(&name) {
            Ok(value) if value.is_empty() => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(variables::Error::Undefined(_)) => Ok(None),
            Err(variables::Error::InvalidName(reason)) => Err(Error::Other(format!(
                "invalid variable name {name:?}: {reason}"
            ))),
            Err(variables::Error::Provider(reason)) => Err(Error::Unavailable(reason)),
            Err(variables::Error::Other(reason)) => Err(Error::Other(reason)),
        }
    }
}
