//! The users file (`examples/users.toml`): who may log in on the authorization page. Passwords
//! exist only as argon2id hashes, like client secrets, and so do the second factors: a code
//! the user enters after the password when a client asks for `urn:bearer-guard:acr:mfa`
//! (a fixed code per user stands in for an authenticator app in this demo).

use std::collections::HashMap;

use argon2::password_hash::phc::PasswordHash;
use serde::Deserialize;

use super::Error;
use super::clients::check_hash;

/// Longest accepted username, in bytes.
pub const MAX_USERNAME: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    username: String,
    password_hash: String,
    #[serde(default)]
    second_factor_hash: Option<String>,
}

/// A user: the `sub` of the tokens issued on their consent.
#[derive(Clone)]
pub struct User {
    pub username: String,
    pub password_hash: PasswordHash,
    /// The hash of the user's one-time code; `None`: the user cannot sign in with a
    /// second factor (`urn:bearer-guard:acr:mfa`).
    pub second_factor_hash: Option<PasswordHash>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Parses and checks a users file (TOML `[[users]]` tables). An empty file is allowed: then
/// nobody can log in.
pub fn parse_users(text: &str) -> Result<HashMap<String, User>, Error> {
    let file: UsersFile = toml::from_str(text)?;
    let mut users = HashMap::with_capacity(file.users.len());
    for entry in file.users {
        let name = entry.username;
        if name.is_empty() || name.len() > MAX_USERNAME || name.chars().any(char::is_control) {
            return Err("a username is empty, too long or has control characters".into());
        }
        let password_hash = PasswordHash::new(&entry.password_hash)
            .map_err(|_| format!("user {name:?}: password_hash is not a PHC string"))?;
        check_hash(&password_hash).map_err(|e| format!("user {name:?}: {e}"))?;
        let second_factor_hash = match entry.second_factor_hash {
            None => None,
            Some(hash) => {
                let hash = PasswordHash::new(&hash).map_err(|_| {
                    format!("user {name:?}: second_factor_hash is not a PHC string")
                })?;
                check_hash(&hash).map_err(|e| format!("user {name:?}: second factor: {e}"))?;
                Some(hash)
            }
        };
        let user = User {
            username: name.clone(),
            password_hash,
            second_factor_hash,
        };
        if users.insert(name.clone(), user).is_some() {
            return Err(format!("user {name:?} appears twice").into());
        }
    }
    Ok(users)
}
