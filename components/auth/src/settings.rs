//! Auth configuration, read once per request from `portico:platform/config`.
//! Every mistake is reported as a `500 auth-misconfigured` naming the
//! variable; nothing falls back to a built-in secret.

use portico_auth_logic::password::DEFAULT_ITERATIONS;
use portico_auth_logic::secret::decode_secret;

use crate::portico::platform::config;
use crate::portico::types::http::Problem;
use crate::problems::misconfigured;

const DEFAULT_LIFETIME_SECS: u64 = 24 * 3600;
const DEFAULT_LEEWAY_SECS: u64 = 30;

pub struct Settings {
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub lifetime: u64,
    pub leeway: u64,
    pub iterations: u32,
    /// `(name, password)` of the bootstrap admin, if configured.
    pub bootstrap_admin: Option<(String, String)>,
}

fn variable(name: &str) -> Result<Option<String>, Problem> {
    config::get(name)
        .map(|value| value.filter(|v| !v.is_empty()))
        .map_err(|err| misconfigured(format!("reading variable {name}: {err:?}")))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, Problem> {
    match variable(name)? {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| misconfigured(format!("{name} must be a whole number, not {text:?}"))),
    }
}

impl Settings {
    pub fn load() -> Result<Settings, Problem> {
        let secret = match variable("jwt_secret")? {
            Some(text) => {
                decode_secret(&text).map_err(|why| misconfigured(format!("jwt_secret {why}")))?
            }
            None => {
                return Err(misconfigured(
                    "jwt_secret is not set; sessions cannot be signed or verified",
                ));
            }
        };
        let previous_secret = variable("jwt_previous_secret")?
            .map(|text| {
                decode_secret(&text)
                    .map_err(|why| misconfigured(format!("jwt_previous_secret {why}")))
            })
            .transpose()?;
        let lifetime = number("session_lifetime", DEFAULT_LIFETIME_SECS)?;
        if lifetime == 0 {
            return Err(misconfigured("session_lifetime must be at least 1 second"));
        }
        let iterations = number("password_iterations", DEFAULT_ITERATIONS)?;
        if iterations == 0 {
            return Err(misconfigured("password_iterations must be at least 1"));
        }
        let bootstrap_admin = match variable("bootstrap_admin")? {
            None => None,
            Some(text) => match text.split_once(':') {
                Some((name, password)) if !name.is_empty() && !password.is_empty() => {
                    Some((name.to_string(), password.to_string()))
                }
                _ => return Err(misconfigured("bootstrap_admin must be name:password")),
            },
        };
        Ok(Settings {
            secret,
            previous_secret,
            lifetime,
            leeway: number("jwt_leeway", DEFAULT_LEEWAY_SECS)?,
            iterations,
            bootstrap_admin,
        })
    }

    /// Keys that verify: the current secret, then the previous one.
    pub fn verification_keys(&self) -> Vec<&[u8]> {
        std::iter::once(self.secret.as_slice())
            .chain(self.previous_secret.as_deref())
            .collect()
    }
}
