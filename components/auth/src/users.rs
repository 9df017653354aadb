//! Users in the KV store under `users/<name>`: a PBKDF2 hash, roles, and
//! when the user was created.

use portico_auth_logic::password::{dummy_verify, hash_password, verify_password};
use portico_auth_logic::user::{
    MAX_PASSWORD_BYTES, UserRecord as User, check_new_password, valid_name, valid_role,
};

use crate::portico::platform::kv;
use crate::portico::types::http::Problem;
use crate::problems::{bad_request, invalid_credentials, misconfigured, problem, storage};
use crate::settings::Settings;

fn check_name(name: &str) -> Result<(), Problem> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(bad_request("user names are 1 to 64 of A-Z a-z 0-9 . _ - @"))
    }
}

fn check_roles(roles: &[String]) -> Result<(), Problem> {
    if roles.iter().all(|r| valid_role(r)) {
        Ok(())
    } else {
        Err(bad_request("roles are 1 to 32 of a-z 0-9 -"))
    }
}

fn load(name: &str) -> Result<Option<User>, Problem> {
    let Some(bytes) = kv::get(&User::key(name)).map_err(storage)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| misconfigured(format!("stored user {name:?} is unreadable: {err}")))
}

fn store(user: &User) -> Result<(), Problem> {
    let bytes = serde_json::to_vec(user).map_err(|err| misconfigured(err.to_string()))?;
    kv::set(&User::key(&user.name), &bytes, None).map_err(storage)
}

/// Creates or replaces a user.
pub fn put(
    settings: &Settings,
    name: &str,
    password: &str,
    roles: &[String],
) -> Result<(), Problem> {
    check_name(name)?;
    check_roles(roles)?;
    check_new_password(password).map_err(bad_request)?;
    let replaced = load(name)?.is_some();
    let salt = crate::random_bytes::<16>();
    store(&User {
        name: name.to_string(),
        password: hash_password(password, &salt, settings.iterations),
        roles: roles.to_vec(),
        created: crate::now_secs(),
    })?;
    // Sessions issued under the old roles or password end now (a new user
    // has none).
    if replaced {
        crate::sessions::bump_generation(name)?;
    }
    Ok(())
}

/// The user whose credentials these are. Unknown users cost a dummy hash of
/// the same work, so the answer's timing does not reveal which names exist.
pub fn authenticate(settings: &Settings, name: &str, password: &str) -> Result<User, Problem> {
    if check_name(name).is_err() || password.len() > MAX_PASSWORD_BYTES {
        dummy_verify(password, settings.iterations);
        return Err(invalid_credentials());
    }
    let mut user = load(name)?;
    if user.is_none()
        && let Some((admin, admin_password)) = &settings.bootstrap_admin
        && admin == name
    {
        check_new_password(admin_password)
            .map_err(|rule| misconfigured(format!("bootstrap_admin: {rule}")))?;
        put(settings, admin, admin_password, &["admin".to_string()])?;
        user = load(name)?;
    }
    let Some(user) = user else {
        dummy_verify(password, settings.iterations);
        return Err(invalid_credentials());
    };
    match verify_password(password, &user.password) {
        Ok(true) => Ok(user),
        Ok(false) => Err(invalid_credentials()),
        Err(err) => Err(misconfigured(format!(
            "stored hash of {name:?} is unusable: {err}"
        ))),
    }
}

fn no_such_user(name: &str) -> Problem {
    problem(
        404,
        "not-found",
        "No such user",
        format!("no user {name:?}"),
    )
}

/// `404` unless the user exists (a bad name is a `400`).
pub fn check_existing(name: &str) -> Result<(), Problem> {
    check_name(name)?;
    load(name)?.map(|_| ()).ok_or_else(|| no_such_user(name))
}

/// Removes a user record.
pub fn delete(name: &str) -> Result<(), Problem> {
    check_name(name)?;
    kv::delete(&User::key(name)).map_err(storage)
}

fn public(user: &User) -> serde_json::Value {
    serde_json::json!({
        "name": user.name,
        "roles": user.roles,
        "created": user.created,
    })
}

/// The public part of a user record.
pub fn profile(name: &str) -> Result<String, Problem> {
    let user = load(name)?.ok_or_else(|| no_such_user(name))?;
    Ok(public(&user).to_string())
}

/// The public part of every user record, in name order (the KV store lists
/// keys in byte order).
pub fn list() -> Result<String, Problem> {
    let prefix = portico_auth_logic::user::KEY_PREFIX;
    let mut users = Vec::new();
    for key in kv::list_keys(prefix).map_err(storage)? {
        // Deleted between listing and loading: just gone.
        if let Some(user) = load(&key[prefix.len()..])? {
            users.push(public(&user));
        }
    }
    Ok(serde_json::Value::Array(users).to_string())
}

/// Replaces a user's roles and ends the sessions issued under the old ones.
pub fn set_roles(name: &str, roles: &[String]) -> Result<(), Problem> {
    check_name(name)?;
    check_roles(roles)?;
    let mut user = load(name)?.ok_or_else(|| no_such_user(name))?;
    user.roles = roles.to_vec();
    store(&user)?;
    crate::sessions::bump_generation(name)
}
