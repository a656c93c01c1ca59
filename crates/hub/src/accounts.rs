//! Users, organizations, their members and personal access tokens; who a token belongs to,
//! and what a caller may do with an owner or a repository. Every way in (API, Git over HTTP)
//! asks here before it acts.

use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{TimeDelta, Utc};
use mirrorhub_core::{Access, AccountKind, Actor, ErrorCode, OwnerName};
use mirrorhub_store::{AccessToken, Account, NewAccessToken, NewAccount, Repo, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::{random_token, Hub, HubError};

/// Every personal access token starts with this, so secret scanners (and people) can tell one.
pub const TOKEN_PREFIX: &str = "mhp_";
/// Passwords shorter than this are refused.
pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 1024;
const MAX_TOKEN_NAME_LEN: usize = 100;
/// A token's last use is written at most this often, so a clone (several requests) or an API
/// loop does not write on every request.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// A token just made: the secret, shown once, and what is stored of it.
pub struct NewToken {
    pub secret: String,
    pub token: AccessToken,
}

/// Redacts the secret.
impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("secret", &"[redacted]")
            .field("token", &self.token)
            .finish()
    }
}

/// What a new token should be.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub name: String,
    pub scope: Access,
    /// The token stops working this long after it is made; never, without.
    pub expires_in: Option<Duration>,
}

/// A member of an organization, with their role.
#[derive(Debug, Clone)]
pub struct Member {
    pub account: Account,
    pub role: Access,
}

impl Hub {
    /// Who a token (an access token's secret) belongs to, and what it may do. Expired and
    /// revoked tokens are refused with the reason, so their owner knows what to do.
    pub async fn authenticate_token(&self, secret: &str) -> Result<Actor, HubError> {
        let unknown = || {
            HubError::Unauthorized(
                "the token is not valid: check that it was copied whole, or create a new one"
                    .into(),
            )
        };
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 128 {
            return Err(unknown());
        }
        let Some((token, user)) = self.store.access_token_by_hash(&token_hash(secret)).await?
        else {
            return Err(unknown());
        };
        let now = Utc::now();
        if let Some(at) = token.revoked_at {
            return Err(HubError::Unauthorized(format!(
                "the token {:?} was revoked on {}; create a new one",
                token.name,
                at.format("%Y-%m-%d %H:%M UTC")
            )));
        }
        if let Some(at) = token.expires_at.filter(|at| *at <= now) {
            return Err(HubError::Unauthorized(format!(
                "the token {:?} expired on {}; create a new one",
                token.name,
                at.format("%Y-%m-%d %H:%M UTC")
            )));
        }
        if token.last_used_at.is_none_or(|at| now - at >= TOUCH_EVERY) {
            if let Err(e) = self.store.touch_access_token(token.id, now).await {
                tracing::warn!(error = %e, token_id = token.id, "a token's last use could not be recorded");
            }
        }
        Ok(Actor::User {
            id: user.id,
            name: user.name,
            site_admin: user.site_admin,
            scope: token.scope,
        })
    }

    /// The organizations the actor (a user) belongs to, with their role.
    pub async fn memberships(&self, actor: &Actor) -> Result<Vec<(String, Access)>, HubError> {
        match actor {
            Actor::User { id, .. } => Ok(self.store.memberships(*id).await?),
            _ => Ok(Vec::new()),
        }
    }

    /// Every user and organization. Only a site admin may list them.
    pub async fn list_accounts(&self, actor: &Actor) -> Result<Vec<Account>, HubError> {
        require_site(actor, "list users")?;
        Ok(self.store.list_accounts().await?)
    }

    /// Creates a user. Only a site admin may.
    pub async fn create_user(
        &self,
        actor: &Actor,
        name: &str,
        password: Option<&str>,
        site_admin: bool,
    ) -> Result<Account, HubError> {
        require_site(actor, "create users")?;
        let name = parse_account_name(name, "username")?;
        let password_hash = match password {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let new = NewAccount {
            name,
            kind: AccountKind::User,
            site_admin,
            password_hash,
        };
        let user = self.new_account(&new).await?;
        tracing::info!(user = %user.name, site_admin, "user created");
        Ok(user)
    }

    /// Creates an organization. A user who creates one becomes its admin member.
    pub async fn create_org(&self, actor: &Actor, name: &str) -> Result<Account, HubError> {
        let creator = match actor {
            Actor::Anonymous => return Err(HubError::Unauthorized(NEED_TOKEN.into())),
            Actor::AdminToken => None,
            Actor::User { id, scope, .. } => {
                require_scope(*scope, Access::Write, "create organizations")?;
                Some(*id)
            }
        };
        let new = NewAccount {
            name: parse_account_name(name, "name")?,
            kind: AccountKind::Org,
            site_admin: false,
            password_hash: None,
        };
        let org = self.new_account(&new).await?;
        if let Some(user_id) = creator {
            self.store
                .set_member(org.id, user_id, Access::Admin)
                .await?;
        }
        tracing::info!(org = %org.name, "organization created");
        Ok(org)
    }

    /// Deletes a user (site admins) or an organization (its admins), with their tokens,
    /// memberships and sessions. Refused while repositories are owned by the name: a later
    /// account of the same name must never inherit them.
    pub async fn delete_account(
        &self,
        actor: &Actor,
        name: &str,
        kind: AccountKind,
    ) -> Result<(), HubError> {
        let account = self.account(name).await?;
        if account.kind != kind {
            return Err(HubError::AccountNotFound(format!(
                "{} is a{}, not a{}",
                account.name,
                article_kind(account.kind),
                article_kind(kind)
            )));
        }
        match account.kind {
            AccountKind::User => require_site(actor, "delete users")?,
            AccountKind::Org => {
                self.org_for(actor, &account.name, Access::Admin).await?;
            }
        }
        let owned = self
            .list_repos()
            .await?
            .into_iter()
            .filter(|r| r.owner.eq_ignore_ascii_case(&account.name))
            .count();
        if owned > 0 || !self.store.delete_account(account.id).await? {
            return Err(HubError::InvalidState(format!(
                "{} owns {owned} repositor{}: delete them first",
                account.name,
                if owned == 1 { "y" } else { "ies" }
            )));
        }
        tracing::info!(account = %account.name, kind = %account.kind, "account deleted");
        Ok(())
    }

    /// Changes a user's password (themself with an admin-scoped token, or a site admin;
    /// `Some(None)` removes it) or whether they are a site admin (site admins only).
    pub async fn update_user(
        &self,
        actor: &Actor,
        username: &str,
        password: Option<Option<&str>>,
        site_admin: Option<bool>,
    ) -> Result<Account, HubError> {
        let user = if site_admin.is_some() {
            require_site(actor, "make or unmake site admins")?;
            self.user(username).await?
        } else {
            self.token_owner(actor, username).await?
        };
        let password_hash = match password {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => Some(Some(hash_password(p).await?)),
        };
        self.store
            .update_user(user.id, password_hash, site_admin)
            .await?;
        tracing::info!(user = %user.name, password_changed = password.is_some(), ?site_admin, "user changed");
        self.user(username).await
    }

    /// Adds a user to an organization with `role`, or changes their role. Needs admin of the
    /// organization.
    pub async fn set_member(
        &self,
        actor: &Actor,
        org: &str,
        username: &str,
        role: Access,
    ) -> Result<Member, HubError> {
        let org = self.org_for(actor, org, Access::Admin).await?;
        let user = self.user(username).await?;
        self.store.set_member(org.id, user.id, role).await?;
        tracing::info!(org = %org.name, user = %user.name, %role, "member set");
        Ok(Member {
            account: user,
            role,
        })
    }

    /// Removes a user from an organization. Needs admin of the organization.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        org: &str,
        username: &str,
    ) -> Result<(), HubError> {
        let org = self.org_for(actor, org, Access::Admin).await?;
        let user = self.user(username).await?;
        if !self.store.remove_member(org.id, user.id).await? {
            return Err(HubError::AccountNotFound(format!(
                "{} is not a member of {}",
                user.name, org.name
            )));
        }
        tracing::info!(org = %org.name, user = %user.name, "member removed");
        Ok(())
    }

    /// An organization's members. Needs to be one (or a site admin).
    pub async fn list_members(&self, actor: &Actor, org: &str) -> Result<Vec<Member>, HubError> {
        let org = self.org_for(actor, org, Access::Read).await?;
        Ok(self
            .store
            .list_members(org.id)
            .await?
            .into_iter()
            .map(|(account, role)| Member { account, role })
            .collect())
    }

    /// Makes a personal access token for `username`: by the user themself (with an admin-scoped
    /// token) or a site admin. The secret is in the answer and nowhere else.
    pub async fn create_token(
        &self,
        actor: &Actor,
        username: &str,
        request: TokenRequest,
    ) -> Result<NewToken, HubError> {
        let user = self.token_owner(actor, username).await?;
        issue_token(self.store.as_ref(), &user, request).await
    }

    /// Makes a personal access token for a user who proves who they are with their password:
    /// how a user gets their first token.
    pub async fn create_token_with_password(
        &self,
        username: &str,
        password: &str,
        request: TokenRequest,
    ) -> Result<NewToken, HubError> {
        let user = self.check_password(username, password).await?;
        issue_token(self.store.as_ref(), &user, request).await
    }

    /// A user's tokens (never their secrets).
    pub async fn list_tokens(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<Vec<AccessToken>, HubError> {
        let user = self.token_owner(actor, username).await?;
        Ok(self.store.list_access_tokens(user.id).await?)
    }

    /// Revokes a user's token: refused from the next request on.
    pub async fn revoke_token(
        &self,
        actor: &Actor,
        username: &str,
        token_id: i64,
    ) -> Result<(), HubError> {
        let user = self.token_owner(actor, username).await?;
        if !self
            .store
            .revoke_access_token(user.id, token_id, Utc::now())
            .await?
        {
            return Err(HubError::TokenNotFound(format!(
                "{} has no token with id {token_id}",
                user.name
            )));
        }
        tracing::info!(user = %user.name, token_id, "token revoked");
        Ok(())
    }

    /// The repository `owner/name` and the actor's access to it, if it includes `need`. A
    /// repository the actor may not read is reported missing, exactly like one that does not
    /// exist.
    pub async fn authorize_repo(
        &self,
        actor: &Actor,
        owner: &str,
        name: &str,
        need: Access,
    ) -> Result<(Repo, Access), HubError> {
        let repo = self.get_repo(owner, name).await?;
        let role = self.org_role(actor, &repo.owner).await?;
        match actor.repo_access(&repo.owner, repo.visibility, role) {
            None if *actor == Actor::Anonymous => Err(HubError::Unauthorized(format!(
                "repository {owner}/{name} does not exist or is private: {NEED_TOKEN}"
            ))),
            None => Err(HubError::NotFound(format!("{owner}/{name}"))),
            Some(have) if have.includes(need) => Ok((repo, have)),
            Some(have) => Err(HubError::Forbidden(refusal(
                actor,
                have,
                need,
                &format!("{}/{}", repo.owner, repo.name),
            ))),
        }
    }

    /// Checks the actor may create repositories under `owner` (write on it). The hub's admin
    /// token may name an owner that does not exist yet: it is created as an organization.
    pub async fn authorize_owner(&self, actor: &Actor, owner: &str) -> Result<(), HubError> {
        if *actor == Actor::Anonymous {
            return Err(HubError::Unauthorized(NEED_TOKEN.into()));
        }
        let site_writer = actor
            .site_access()
            .is_some_and(|a| a.includes(Access::Write));
        if site_writer && self.store.get_account(owner).await?.is_none() {
            return Ok(());
        }
        let Some(account) = self.store.get_account(owner).await? else {
            return Err(HubError::AccountNotFound(format!(
                "no user or organization is named {owner:?}: create the organization first (`mirrorhub org create {owner}`, POST /api/v1/orgs), or use your own name"
            )));
        };
        let role = self.org_role(actor, &account.name).await?;
        match actor.owner_access(&account.name, role) {
            Some(have) if have.includes(Access::Write) => Ok(()),
            Some(have) => Err(HubError::Forbidden(refusal(
                actor,
                have,
                Access::Write,
                &account.name,
            ))),
            None if account.kind == AccountKind::User => Err(HubError::Forbidden(format!(
                "you may not create repositories under {}: it is another user's name; use your own, or an organization you write to",
                account.name
            ))),
            None => Err(HubError::Forbidden(format!(
                "you may not create repositories under {}: ask an admin of the organization to add you as a member with the write role",
                account.name
            ))),
        }
    }

    /// The repositories the actor may read, by owner/name, each with the actor's access.
    pub async fn visible_repos(&self, actor: &Actor) -> Result<Vec<(Repo, Access)>, HubError> {
        let repos = self.list_repos().await?;
        let memberships = match actor {
            Actor::User { id, .. } => self.store.memberships(*id).await?,
            _ => Vec::new(),
        };
        Ok(repos
            .into_iter()
            .filter_map(|r| {
                let role = role_in(&memberships, &r.owner);
                let access = actor.repo_access(&r.owner, r.visibility, role)?;
                Some((r, access))
            })
            .collect())
    }

    /// Makes sure the owner of a new repository exists as an account: an owner named by the
    /// hub's admin token for the first time becomes an organization.
    pub(crate) async fn ensure_owner(&self, owner: &OwnerName) -> Result<(), HubError> {
        if self.store.get_account(owner.as_str()).await?.is_some() {
            return Ok(());
        }
        let new = NewAccount {
            name: owner.clone(),
            kind: AccountKind::Org,
            site_admin: false,
            password_hash: None,
        };
        match self.store.create_account(&new, Utc::now()).await {
            // Taken meanwhile by another request: it exists, which is all we need.
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A user with their password checked. A wrong name and a wrong password get the same
    /// answer, after the same work.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Account, HubError> {
        let wrong = || HubError::Unauthorized("wrong username or password".into());
        let user = match self.store.get_account(username).await? {
            Some(a) if a.kind == AccountKind::User => Some(a),
            _ => None,
        };
        let stored = match &user {
            Some(u) => self.store.password_hash(u.id).await?,
            None => None,
        };
        let has_password = stored.is_some();
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            let stored = stored.unwrap_or_else(|| dummy_hash().to_owned());
            PasswordHash::new(&stored).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .map_err(|e| HubError::Io(std::io::Error::other(e)))?;
        let ok = matches && has_password;
        match user {
            Some(user) if ok => Ok(user),
            _ => Err(wrong()),
        }
    }

    /// The user whose tokens the actor manages: themself, with an admin-scoped token, or
    /// anyone, for a site admin.
    async fn token_owner(&self, actor: &Actor, username: &str) -> Result<Account, HubError> {
        match actor {
            Actor::Anonymous => Err(HubError::Unauthorized(NEED_TOKEN.into())),
            Actor::User { name, scope, .. } if name.eq_ignore_ascii_case(username) => {
                require_scope(*scope, Access::Admin, "manage tokens")?;
                self.user(username).await
            }
            _ => {
                require_site(actor, "manage other users' tokens")?;
                self.user(username).await
            }
        }
    }

    /// An organization the actor has at least `need` in.
    async fn org_for(&self, actor: &Actor, org: &str, need: Access) -> Result<Account, HubError> {
        if *actor == Actor::Anonymous {
            return Err(HubError::Unauthorized(NEED_TOKEN.into()));
        }
        let account = self.account(org).await?;
        if account.kind != AccountKind::Org {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "org",
                format!("{} is a user, not an organization", account.name),
            ));
        }
        let role = self.org_role(actor, &account.name).await?;
        match actor.owner_access(&account.name, role) {
            Some(have) if have.includes(need) => Ok(account),
            Some(have) => Err(HubError::Forbidden(refusal(
                actor,
                have,
                need,
                &account.name,
            ))),
            None => Err(HubError::Forbidden(format!(
                "you are not a member of {}",
                account.name
            ))),
        }
    }

    /// The actor's role in `owner`, when the actor is a user and `owner` an organization they
    /// belong to.
    pub(crate) async fn org_role(
        &self,
        actor: &Actor,
        owner: &str,
    ) -> Result<Option<Access>, HubError> {
        let Actor::User { id, .. } = actor else {
            return Ok(None);
        };
        Ok(role_in(&self.store.memberships(*id).await?, owner))
    }

    async fn account(&self, name: &str) -> Result<Account, HubError> {
        self.store.get_account(name).await?.ok_or_else(|| {
            HubError::AccountNotFound(format!("no user or organization is named {name:?}"))
        })
    }

    async fn user(&self, name: &str) -> Result<Account, HubError> {
        let account = self.account(name).await?;
        if account.kind != AccountKind::User {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "username",
                format!("{} is an organization, not a user", account.name),
            ));
        }
        Ok(account)
    }

    async fn new_account(&self, new: &NewAccount) -> Result<Account, HubError> {
        create_account(self.store.as_ref(), new).await
    }
}

/// Records a new account; a taken name (in any case) is [`HubError::AccountExists`].
async fn create_account(store: &dyn Store, new: &NewAccount) -> Result<Account, HubError> {
    match store.create_account(new, Utc::now()).await {
        Ok(a) => Ok(a),
        Err(StoreError::Conflict) => Err(HubError::AccountExists(new.name.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Makes a token for `user` and records its hash.
async fn issue_token(
    store: &dyn Store,
    user: &Account,
    request: TokenRequest,
) -> Result<NewToken, HubError> {
    let name = request.name.trim();
    if name.is_empty() || name.len() > MAX_TOKEN_NAME_LEN || name.chars().any(char::is_control) {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "name",
            format!("a token needs a name of 1 to {MAX_TOKEN_NAME_LEN} characters, without control characters, e.g. \"laptop\" or \"ci\""),
        ));
    }
    let now = Utc::now();
    let expires_at = match request.expires_in {
        None => None,
        Some(d) => Some(
            TimeDelta::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .filter(|_| !d.is_zero())
                .ok_or_else(|| {
                    HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "expires_in",
                        "expires_in must be a positive duration such as 30d, 12h or 90m",
                    )
                })?,
        ),
    };
    let secret = format!("{TOKEN_PREFIX}{}", random_token());
    let new = NewAccessToken {
        user_id: user.id,
        name: name.to_owned(),
        token_sha256: token_hash(&secret),
        scope: request.scope,
        expires_at,
    };
    let token = match store.create_access_token(&new, now).await {
        Ok(t) => t,
        Err(StoreError::Conflict) => {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "name",
                format!("{} has a token named {name:?} already: choose another name, or revoke that one first", user.name),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %user.name, token_id = token.id, scope = %token.scope, "token created");
    Ok(NewToken { secret, token })
}

/// Creates a user with a first token of the admin scope, straight in the store: how the first
/// user of a hub is made (`mirrorhub admin create-user`), before anyone can call the API.
pub async fn bootstrap_user(
    store: &dyn Store,
    name: &str,
    site_admin: bool,
) -> Result<(Account, NewToken), HubError> {
    let new = NewAccount {
        name: parse_account_name(name, "username")?,
        kind: AccountKind::User,
        site_admin,
        password_hash: None,
    };
    let user = create_account(store, &new).await?;
    let request = TokenRequest {
        name: "first token".into(),
        scope: Access::Admin,
        expires_in: None,
    };
    let token = issue_token(store, &user, request).await?;
    Ok((user, token))
}

pub(crate) const NEED_TOKEN: &str =
    "authentication required: give a personal access token as `Authorization: Bearer <token>`";

/// The argon2id hash of a random password, made once: checked against when the user does not
/// exist or has no password, so a wrong name costs as much as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(random_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// SHA-256 (hex) of a token's secret: tokens are 256 random bits, so a plain hash is enough
/// to make a stolen database useless for signing in.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The role in `owner` among a user's `memberships` (organization names, any case).
fn role_in(memberships: &[(String, Access)], owner: &str) -> Option<Access> {
    memberships
        .iter()
        .find(|(org, _)| org.eq_ignore_ascii_case(owner))
        .map(|(_, role)| *role)
}

/// " user" or "n organization", after "a".
fn article_kind(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::User => " user",
        AccountKind::Org => "n organization",
    }
}

/// Why `have` is not enough for `need` on `what`, saying whether the token or the role falls
/// short.
fn refusal(actor: &Actor, have: Access, need: Access, what: &str) -> String {
    match actor {
        Actor::User { scope, .. } if !scope.includes(need) => format!(
            "this token's scope is {scope}, and this needs {need}: create a token with the {need} scope"
        ),
        _ => format!(
            "you may only {have} {what}, and this needs {need}: ask an admin of {} for the {need} role",
            what.split('/').next().unwrap_or(what)
        ),
    }
}

fn require_scope(scope: Access, need: Access, what: &str) -> Result<(), HubError> {
    if scope.includes(need) {
        Ok(())
    } else {
        Err(HubError::Forbidden(format!(
            "this token's scope is {scope}; to {what} use a token with the {need} scope"
        )))
    }
}

fn require_site(actor: &Actor, what: &str) -> Result<(), HubError> {
    match actor.site_access() {
        Some(scope) => require_scope(scope, Access::Admin, what),
        None if *actor == Actor::Anonymous => Err(HubError::Unauthorized(NEED_TOKEN.into())),
        None => Err(HubError::Forbidden(format!("only a site admin may {what}"))),
    }
}

fn parse_account_name(name: &str, field: &'static str) -> Result<OwnerName, HubError> {
    OwnerName::parse(name)
        .map_err(|e| HubError::invalid(ErrorCode::InvalidName, field, e.to_string()))
}

async fn hash_password(password: &str) -> Result<String, HubError> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "password",
            format!("a password needs at least {MIN_PASSWORD_LEN} characters (at most {MAX_PASSWORD_LEN} bytes)"),
        ));
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| HubError::Io(std::io::Error::other(e)))?
    .map_err(|e| HubError::Io(std::io::Error::other(e.to_string())))
}
