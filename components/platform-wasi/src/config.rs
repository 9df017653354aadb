//! `portico:platform/config`: the variable `name` is the environment
//! variable `NAME` (`wasmtime serve --env JWT_SECRET=...`).

use portico_storage_format::names;

use crate::Adapter;
use crate::exports::portico::platform::config::Guest;
use crate::exports::portico::platform::types::Error;

impl Guest for Adapter {
    /// `wasmtime serve` tells a component nothing about who connected.
    fn client_address_header() -> Option<String> {
        None
    }

    fn get(name: String) -> Result<Option<String>, Error> {
        if !names::is_variable_name(&name) {
            return Err(Error::Other(format!(
                "invalid variable name {name:?}: use lower-case letters, digits and '_', starting with a letter"
            )));
        }
        Ok(std::env::var(names::env_var_for(&name))
            .ok()
            .filter(|value| !value.is_empty()))
    }
}
