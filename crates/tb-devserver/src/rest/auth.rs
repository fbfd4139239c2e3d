//! Login and tokens (spec 3): HS512 JWTs signed with a key made at start, claims as
//! ThingsBoard issues them; the user is the configured tenant administrator.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha512;

use super::{
    entity_id, ok_empty, ok_json, ApiError, ApiResult, ApiState, NULL_UUID, TENANT_ID, USER_ID,
};
use crate::config::Login;
use crate::store::now_ms;

/// Lifetimes (`security.jwt.tokenExpirationTime`, `refreshTokenExpTime`), seconds.
const ACCESS_SECS: i64 = 9000;
const REFRESH_SECS: i64 = 604_800;
const ISSUER: &str = "thingsboard.io";

type HmacSha512 = Hmac<Sha512>;

/// Issues and checks the server's tokens.
pub(crate) struct Jwt {
    key: Vec<u8>,
    admin: Login,
    session: String,
}

/// Why a token was refused.
enum TokenError {
    /// Not a JWT at all.
    Malformed,
    /// Bad signature, or expired (ThingsBoard answers both as expired).
    Expired,
}

impl Jwt {
    /// A signer with a fresh random key (tokens die with the process).
    pub(crate) fn new(admin: Login) -> Jwt {
        let key: Vec<u8> = (0..4)
            .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
            .collect();
        Jwt {
            key,
            admin,
            session: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let header = B64.encode(br#"{"alg":"HS512"}"#);
        let payload = B64.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let mut mac = HmacSha512::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{input}.{sig}")
    }

    fn claims(&self, token: &str) -> Result<Value, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        let sig = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let claims: Value = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        let mut mac = HmacSha512::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Expired)?;
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp * 1000 <= now_ms() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn check(&self, token: &str, scope: &str) -> Result<(), ApiError> {
        match self.claims(token) {
            Ok(c) => {
                let scoped = c
                    .get("scopes")
                    .and_then(Value::as_array)
                    .is_some_and(|s| s.iter().any(|v| v == scope));
                if scoped {
                    Ok(())
                } else {
                    Err(ApiError::unauthorized("Invalid username or password"))
                }
            }
            Err(TokenError::Malformed) => {
                Err(ApiError::unauthorized("Invalid username or password"))
            }
            Err(TokenError::Expired) => Err(ApiError::object(
                StatusCode::UNAUTHORIZED,
                11,
                "Token has expired",
            )),
        }
    }

    /// Checks an access token (spec 3.4).
    pub(crate) fn verify_access(&self, token: &str) -> Result<(), ApiError> {
        self.check(token, "TENANT_ADMIN")
    }

    /// A new access/refresh pair for the administrator (spec 3.1).
    fn pair(&self) -> Value {
        let now = now_ms() / 1000;
        let access = json!({
            "sub": self.admin.username,
            "userId": USER_ID,
            "scopes": ["TENANT_ADMIN"],
            "sessionId": self.session,
            "firstName": null,
            "lastName": null,
            "enabled": true,
            "isPublic": false,
            "tenantId": TENANT_ID,
            "customerId": NULL_UUID,
            "iss": ISSUER,
            "iat": now,
            "exp": now + ACCESS_SECS,
        });
        let refresh = json!({
            "sub": self.admin.username,
            "userId": USER_ID,
            "scopes": ["REFRESH_TOKEN"],
            "isPublic": false,
            "sessionId": self.session,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iss": ISSUER,
            "iat": now,
            "exp": now + REFRESH_SECS,
        });
        json!({"token": self.sign(&access), "refreshToken": self.sign(&refresh)})
    }
}

/// `POST /api/auth/login` (spec 3.1).
pub(crate) async fn login(State(api): ApiState, body: Bytes) -> ApiResult {
    let creds: Option<(String, String)> =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            let user = v.get("username")?.as_str()?.to_string();
            let pass = v.get("password")?.as_str()?.to_string();
            (!user.is_empty() && !pass.is_empty()).then_some((user, pass))
        });
    let Some((user, pass)) = creds else {
        return Err(ApiError::unauthorized("Authentication failed"));
    };
    let admin = &api.jwt.admin;
    if user != admin.username || pass != admin.password {
        api.shared
            .logs
            .emit(format!("REST login refused for {user:?}"));
        return Err(ApiError::unauthorized("Invalid username or password"));
    }
    api.shared.logs.emit(format!("REST login of {user:?}"));
    ok_json(api.jwt.pair())
}

/// Any method but POST on the login path.
pub(crate) async fn login_wrong_method() -> ApiError {
    ApiError::unauthorized("Authentication method not supported")
}

/// `POST /api/auth/token` (spec 3.3).
pub(crate) async fn refresh(State(api): ApiState, body: Bytes) -> ApiResult {
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("refreshToken")?.as_str().map(str::to_string))
        .ok_or_else(|| ApiError::unauthorized("Authentication failed"))?;
    api.jwt.check(&token, "REFRESH_TOKEN")?;
    ok_json(api.jwt.pair())
}

/// `GET /api/auth/user` (spec 3.5).
pub(crate) async fn user(State(api): ApiState) -> ApiResult {
    ok_json(json!({
        "id": entity_id("USER", USER_ID),
        "createdTime": 0,
        "tenantId": entity_id("TENANT", TENANT_ID),
        "customerId": entity_id("CUSTOMER", NULL_UUID),
        "email": api.jwt.admin.username,
        "name": api.jwt.admin.username,
        "authority": "TENANT_ADMIN",
        "firstName": null,
        "lastName": null,
        "additionalInfo": {},
    }))
}

/// `POST /api/auth/logout`: nothing to forget.
pub(crate) async fn logout() -> ApiResult {
    ok_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> Jwt {
        Jwt::new(Login {
            username: "u@x".into(),
            password: "p".into(),
        })
    }

    #[test]
    fn issued_tokens_verify_and_carry_thingsboard_claims() {
        let j = jwt();
        let pair = j.pair();
        let token = pair["token"].as_str().unwrap();
        assert!(j.verify_access(token).is_ok());
        let c = j.claims(token).ok().unwrap();
        assert_eq!(c["sub"], "u@x");
        assert_eq!(c["scopes"], json!(["TENANT_ADMIN"]));
        assert_eq!(c["iss"], "thingsboard.io");
        assert!(c["exp"].as_i64().unwrap() > now_ms() / 1000);
        // A refresh token is not an access token, and the other way round.
        let refresh = pair["refreshToken"].as_str().unwrap();
        assert!(j.verify_access(refresh).is_err());
        assert!(j.check(refresh, "REFRESH_TOKEN").is_ok());
    }

    #[test]
    fn foreign_tampered_and_expired_tokens_are_refused_with_their_codes() {
        let j = jwt();
        let other = jwt().pair()["token"].as_str().unwrap().to_string();
        let code = |r: Result<(), ApiError>| match r {
            Err(ApiError::Object { code, .. }) => code,
            _ => 0,
        };
        assert_eq!(code(j.verify_access(&other)), 11); // signature mismatch
        assert_eq!(code(j.verify_access("garbage")), 10);
        assert_eq!(code(j.verify_access("a.b.c")), 10);
        let expired = j.sign(&json!({"scopes": ["TENANT_ADMIN"], "exp": now_ms() / 1000 - 1}));
        assert_eq!(code(j.verify_access(&expired)), 11);
        // Same payload, signature of another payload.
        let good = j.pair()["token"].as_str().unwrap().to_string();
        let sig = good.rsplit('.').next().unwrap();
        let forged = format!("{}.{sig}", expired.rsplit_once('.').unwrap().0);
        assert_eq!(code(j.verify_access(&forged)), 11);
    }
}
