//! `fermyon:spin/variables@2.0.0`: the component's variables, resolved once at
//! startup (see `crate::variables`).

use portico_storage_format::names;

use super::SpinView;
use super::fermyon::spin::variables::{Error, Host};

impl Host for SpinView<'_> {
    fn get(&mut self, name: String) -> Result<String, Error> {
        if !names::is_variable_name(&name) {
            return Err(Error::InvalidName(format!(
                "{name:?}: variable names are lower-case letters, digits and '_', starting with a letter"
            )));
        }
        self.backend
            .variables
            .get(&name)
            .cloned()
            .ok_or(Error::Undefined(name))
    }
}
