//! `/api/v1/user`, `/users`, `/orgs`: who the caller is, users and their personal access
//! tokens, organizations and their members.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_core::duration::parse_duration;
use mirrorhub_core::{Access, AccountKind, Actor, ErrorCode};
use mirrorhub_hub::{Hub, HubError, Member, TokenRequest};
use mirrorhub_store::{AccessToken, Account};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiResult, ApiTags};
use crate::auth::{ApiToken, TokenOrPassword};

pub struct AccountsApi {
    pub hub: Arc<Hub>,
}

/// A user or an organization.
#[derive(Object)]
pub struct AccountResource {
    pub name: String,
    /// `user` or `org`.
    pub kind: String,
    /// Whether the user administers the whole hub.
    pub site_admin: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&Account> for AccountResource {
    fn from(a: &Account) -> Self {
        Self {
            name: a.name.clone(),
            kind: a.kind.to_string(),
            site_admin: a.site_admin,
            created_at: a.created_at,
        }
    }
}

/// Who the caller is.
#[derive(Object)]
pub struct WhoAmIResource {
    /// The user; absent for the hub's admin token, which belongs to no user.
    pub username: Option<String>,
    pub site_admin: bool,
    /// What the credentials may do: `read`, `write`, `admin` (cumulative).
    pub scopes: Vec<String>,
    /// The organizations the user belongs to, with their role.
    pub organizations: Vec<MemberOfResource>,
}

#[derive(Object)]
pub struct MemberOfResource {
    pub org: String,
    /// `read`, `write` or `admin`.
    pub role: String,
}

#[derive(Object)]
pub struct CreateUserBody {
    pub username: String,
    /// Lets the user create their own tokens with HTTP basic auth; at least 12 characters.
    pub password: Option<String>,
    /// Make the user a site admin (may do everything, like the hub's admin token).
    #[oai(default)]
    pub site_admin: bool,
}

#[derive(Object)]
pub struct UpdateUserBody {
    /// A new password (at least 12 characters).
    pub password: Option<String>,
    /// Remove the password: the user signs in with tokens only.
    #[oai(default)]
    pub remove_password: bool,
    /// Make or unmake a site admin (site admins only).
    pub site_admin: Option<bool>,
}

#[derive(Object)]
pub struct CreateOrgBody {
    pub name: String,
}

#[derive(Object)]
pub struct CreateTokenBody {
    /// What the token is for, e.g. `laptop` or `ci`; unique among the user's live tokens.
    pub name: String,
    /// Any of `read`, `write`, `admin`; cumulative (`write` includes `read`). The highest given
    /// counts.
    pub scopes: Vec<String>,
    /// The token stops working this long after it is made, e.g. `30d`, `12h`; never, without.
    pub expires_in: Option<String>,
}

/// A personal access token (never its secret, except once in [`NewTokenResource`]).
#[derive(Object)]
pub struct TokenResource {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&AccessToken> for TokenResource {
    fn from(t: &AccessToken) -> Self {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|at| at <= Utc::now()) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: t.id,
            name: t.name.clone(),
            scopes: scopes(t.scope),
            state: state.to_owned(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A token just made.
#[derive(Object)]
pub struct NewTokenResource {
    /// The secret: shown this once and never again (only its hash is stored). Use it as
    /// `Authorization: Bearer <token>`, or as the password for git (any user name).
    pub token: String,
    #[oai(flatten)]
    pub details: TokenResource,
}

#[derive(Object)]
pub struct SetMemberBody {
    /// `read` (see private repositories), `write` (also create, sync, push) or `admin` (also
    /// settings, promote, delete, members).
    pub role: String,
}

#[derive(Object)]
pub struct MemberResource {
    pub username: String,
    pub role: String,
}

impl From<&Member> for MemberResource {
    fn from(m: &Member) -> Self {
        Self {
            username: m.account.name.clone(),
            role: m.role.to_string(),
        }
    }
}

#[derive(ApiResponse)]
enum Created<T: poem_openapi::types::ToJSON + Send + Sync> {
    #[oai(status = 201)]
    Created(Json<T>),
}

#[derive(ApiResponse)]
enum Removed {
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// Who am I: the user the token belongs to, what it may do, and the user's organizations.
    #[oai(path = "/user", method = "get")]
    async fn whoami(&self, auth: ApiToken) -> ApiResult<Json<WhoAmIResource>> {
        let actor = auth.0;
        let (username, site_admin, scope) = match &actor {
            Actor::User {
                name,
                site_admin,
                scope,
                ..
            } => (Some(name.clone()), *site_admin, *scope),
            _ => (None, true, Access::Admin),
        };
        let organizations = self
            .hub
            .memberships(&actor)
            .await?
            .into_iter()
            .map(|(org, role)| MemberOfResource {
                org,
                role: role.to_string(),
            })
            .collect();
        Ok(Json(WhoAmIResource {
            username,
            site_admin,
            scopes: scopes(scope),
            organizations,
        }))
    }

    /// Create a user (site admins only).
    #[oai(path = "/users", method = "post")]
    async fn create_user(
        &self,
        auth: ApiToken,
        body: Json<CreateUserBody>,
    ) -> ApiResult<Created<AccountResource>> {
        let user = self
            .hub
            .create_user(
                &auth.0,
                body.0.username.trim(),
                body.0.password.as_deref(),
                body.0.site_admin,
            )
            .await?;
        Ok(Created::Created(Json((&user).into())))
    }

    /// List users and organizations (site admins only).
    #[oai(path = "/users", method = "get")]
    async fn list_users(&self, auth: ApiToken) -> ApiResult<Json<Vec<AccountResource>>> {
        let accounts = self.hub.list_accounts(&auth.0).await?;
        Ok(Json(accounts.iter().map(AccountResource::from).collect()))
    }

    /// Change a user's password (themself with an admin-scoped token, or a site admin), or
    /// whether they are a site admin (site admins).
    #[oai(path = "/users/:username", method = "patch")]
    async fn update_user(
        &self,
        auth: ApiToken,
        username: Path<String>,
        body: Json<UpdateUserBody>,
    ) -> ApiResult<Json<AccountResource>> {
        let password = match (&body.0.password, body.0.remove_password) {
            (Some(_), true) => {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "password",
                    "give a new password or remove_password, not both",
                )
                .into())
            }
            (Some(p), false) => Some(Some(p.as_str())),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let user = self
            .hub
            .update_user(&auth.0, &username, password, body.0.site_admin)
            .await?;
        Ok(Json((&user).into()))
    }

    /// Delete a user (site admins), with their tokens, memberships and sessions. Refused
    /// (409) while repositories are owned by the user.
    #[oai(path = "/users/:username", method = "delete")]
    async fn delete_user(&self, auth: ApiToken, username: Path<String>) -> ApiResult<Removed> {
        self.hub
            .delete_account(&auth.0, &username, AccountKind::User)
            .await?;
        Ok(Removed::NoContent)
    }

    /// Create a personal access token. The answer holds the token, once.
    ///
    /// For oneself with an admin-scoped token, for anyone as a site admin, or with one's own
    /// username and password as HTTP basic auth (how a user gets a first token).
    #[oai(path = "/users/:username/tokens", method = "post")]
    async fn create_token(
        &self,
        auth: TokenOrPassword,
        username: Path<String>,
        body: Json<CreateTokenBody>,
    ) -> ApiResult<Created<NewTokenResource>> {
        let request = token_request(body.0)?;
        let made = match auth {
            TokenOrPassword::Token(token) => {
                self.hub.create_token(&token.0, &username, request).await?
            }
            TokenOrPassword::Password(login) => {
                if !login.0.username.eq_ignore_ascii_case(&username) {
                    return Err(HubError::Forbidden(format!(
                        "a password creates tokens only for its own user: sign in as {} or use /users/{}/tokens",
                        *username, login.0.username
                    ))
                    .into());
                }
                self.hub
                    .create_token_with_password(&username, &login.0.password, request)
                    .await?
            }
        };
        Ok(Created::Created(Json(NewTokenResource {
            token: made.secret,
            details: (&made.token).into(),
        })))
    }

    /// List a user's tokens (never their secrets), newest first, revoked ones included.
    #[oai(path = "/users/:username/tokens", method = "get")]
    async fn list_tokens(
        &self,
        auth: ApiToken,
        username: Path<String>,
    ) -> ApiResult<Json<Vec<TokenResource>>> {
        let tokens = self.hub.list_tokens(&auth.0, &username).await?;
        Ok(Json(tokens.iter().map(TokenResource::from).collect()))
    }

    /// Revoke a token: refused from the next request on.
    #[oai(path = "/users/:username/tokens/:id", method = "delete")]
    async fn revoke_token(
        &self,
        auth: ApiToken,
        username: Path<String>,
        id: Path<i64>,
    ) -> ApiResult<Removed> {
        self.hub.revoke_token(&auth.0, &username, id.0).await?;
        Ok(Removed::NoContent)
    }

    /// Create an organization. A user who creates one becomes its admin.
    #[oai(path = "/orgs", method = "post")]
    async fn create_org(
        &self,
        auth: ApiToken,
        body: Json<CreateOrgBody>,
    ) -> ApiResult<Created<AccountResource>> {
        let org = self.hub.create_org(&auth.0, body.0.name.trim()).await?;
        Ok(Created::Created(Json((&org).into())))
    }

    /// Delete an organization (its admins). Refused (409) while it owns repositories.
    #[oai(path = "/orgs/:org", method = "delete")]
    async fn delete_org(&self, auth: ApiToken, org: Path<String>) -> ApiResult<Removed> {
        self.hub
            .delete_account(&auth.0, &org, AccountKind::Org)
            .await?;
        Ok(Removed::NoContent)
    }

    /// List an organization's members (members and site admins).
    #[oai(path = "/orgs/:org/members", method = "get")]
    async fn list_members(
        &self,
        auth: ApiToken,
        org: Path<String>,
    ) -> ApiResult<Json<Vec<MemberResource>>> {
        let members = self.hub.list_members(&auth.0, &org).await?;
        Ok(Json(members.iter().map(MemberResource::from).collect()))
    }

    /// Add a member to an organization, or change their role (organization admins).
    #[oai(path = "/orgs/:org/members/:username", method = "put")]
    async fn set_member(
        &self,
        auth: ApiToken,
        org: Path<String>,
        username: Path<String>,
        body: Json<SetMemberBody>,
    ) -> ApiResult<Json<MemberResource>> {
        let role = parse_access(&body.0.role, "role")?;
        let member = self.hub.set_member(&auth.0, &org, &username, role).await?;
        Ok(Json((&member).into()))
    }

    /// Remove a member from an organization (organization admins).
    #[oai(path = "/orgs/:org/members/:username", method = "delete")]
    async fn remove_member(
        &self,
        auth: ApiToken,
        org: Path<String>,
        username: Path<String>,
    ) -> ApiResult<Removed> {
        self.hub.remove_member(&auth.0, &org, &username).await?;
        Ok(Removed::NoContent)
    }
}

fn scopes(scope: Access) -> Vec<String> {
    scope.implied().iter().map(|a| a.to_string()).collect()
}

fn parse_access(text: &str, field: &'static str) -> Result<Access, HubError> {
    Access::parse(text.trim()).ok_or_else(|| {
        HubError::invalid(
            ErrorCode::InvalidRequest,
            field,
            format!("{text:?} is not one of read, write, admin"),
        )
    })
}

fn token_request(body: CreateTokenBody) -> Result<TokenRequest, HubError> {
    let levels = body
        .scopes
        .iter()
        .map(|s| parse_access(s, "scopes"))
        .collect::<Result<Vec<_>, _>>()?;
    let scope = Access::highest(levels).ok_or_else(|| {
        HubError::invalid(
            ErrorCode::InvalidRequest,
            "scopes",
            "give the token at least one scope: read, write or admin",
        )
    })?;
    let expires_in = match body.expires_in.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_duration(text).map_err(|e| {
            HubError::invalid(
                ErrorCode::InvalidRequest,
                "expires_in",
                format!("expires_in: {e}; e.g. 30d, 12h or 90m"),
            )
        })?),
    };
    Ok(TokenRequest {
        name: body.name,
        scope,
        expires_in,
    })
}
