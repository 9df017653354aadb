//! The application: the middleware chain and the route table, in one place
//! and in order.

use crate::http::{Request, Response};
use crate::middleware::auth::{Authenticate, Authorize, Verified};
use crate::middleware::cors::{self, Cors, CorsConfig};
use crate::middleware::csrf::Csrf;
use crate::middleware::observe::Observe;
use crate::middleware::path::NormalizePath;
use crate::middleware::rate_limit::{Decision, RateLimit};
use crate::middleware::request_id::RequestId;
use crate::middleware::runtime_headers::RuntimeHeaders;
use crate::middleware::security::{self, SecurityHeaders};
use crate::middleware::{Middleware, Next};
use crate::portico::auth::sessions;
use crate::portico::platform::config as variables;
use crate::portico::ratelimit::limiter;
use crate::problem::Problem;
use crate::router::{Pattern, Route, Router};
use crate::routes::{admin, assets, config, flags, health, session};

fn routes() -> Router {
    Router::new(vec![
        Route {
            method: "GET",
            pattern: Pattern::Exact("/healthz"),
            handler: health::get,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/api/config"),
            handler: config::get,
        },
        Route {
            method: "POST",
            pattern: Pattern::Exact("/api/login"),
            handler: session::login,
        },
        Route {
            method: "POST",
            pattern: Pattern::Exact("/api/logout"),
            handler: session::logout,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/api/user"),
            handler: session::user,
        },
        Route {
            method: "GET",
            pattern: Pattern::Prefix("/assets/"),
            handler: assets::get,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/admin/metrics"),
            handler: crate::routes::metrics::get,
        },
        Route {
            method: "POST",
            pattern: Pattern::Prefix("/admin/maintenance/"),
            handler: crate::routes::maintenance::run,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/admin/"),
            handler: assets::admin_page,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/api/aggregate"),
            handler: crate::upstream::aggregate,
        },
        Route {
            method: "POST",
            pattern: Pattern::Exact("/admin/cache/purge"),
            handler: crate::upstream::purge,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/admin/upstreams"),
            handler: crate::upstream::admin_list,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/admin/assets"),
            handler: assets::list,
        },
        Route {
            method: "PUT",
            pattern: Pattern::Prefix("/admin/assets/"),
            handler: assets::put,
        },
        Route {
            method: "DELETE",
            pattern: Pattern::Prefix("/admin/assets/"),
            handler: assets::delete,
        },
        Route {
            method: "GET",
            pattern: Pattern::Prefix("/api/ab/"),
            handler: flags::ab_variant,
        },
        Route {
            method: "POST",
            pattern: Pattern::Exact("/ofrep/v1/evaluate/flags"),
            handler: flags::evaluate_all,
        },
        Route {
            method: "POST",
            pattern: Pattern::Prefix("/ofrep/v1/evaluate/flags/"),
            handler: flags::evaluate_one,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/admin/flags"),
            handler: flags::admin_get,
        },
        Route {
            method: "PUT",
            pattern: Pattern::Exact("/admin/flags"),
            handler: flags::admin_put,
        },
        Route {
            method: "PATCH",
            pattern: Pattern::Prefix("/admin/flags/"),
            handler: flags::admin_patch,
        },
        Route {
            method: "PUT",
            pattern: Pattern::Prefix("/admin/ab/"),
            handler: flags::admin_put_override,
        },
        Route {
            method: "DELETE",
            pattern: Pattern::Prefix("/admin/ab/"),
            handler: flags::admin_delete_override,
        },
        Route {
            method: "GET",
            pattern: Pattern::Exact("/admin/users"),
            handler: admin::list_users,
        },
        Route {
            method: "PUT",
            pattern: Pattern::Prefix("/admin/users/"),
            handler: admin::put_user,
        },
        Route {
            method: "PATCH",
            pattern: Pattern::Prefix("/admin/users/"),
            handler: admin::patch_user,
        },
        Route {
            method: "DELETE",
            pattern: Pattern::Prefix("/admin/users/"),
            handler: admin::delete_user,
        },
        Route {
            method: "POST",
            pattern: Pattern::Exact("/admin/tokens/inspect"),
            handler: admin::inspect_token,
        },
    ])
    .with_fallback(unrouted)
}

/// Paths no route claims: an upstream route (the API gateway), else the
/// static site.
fn unrouted(request: &Request) -> Option<Result<Response, Problem>> {
    crate::upstream::route(request).or_else(|| assets::site(request))
}

fn check_limit(key: &str, path: &str) -> Result<Option<Decision>, Problem> {
    let decision = limiter::check_path(key, path).map_err(Problem::from)?;
    Ok(decision.map(|d| Decision {
        allowed: d.allowed,
        policy: d.policy,
        retry_after_seconds: d.retry_after_seconds,
        headers: d.headers,
    }))
}

fn verify_session(token: &str) -> Result<Verified, Problem> {
    let claims = sessions::verify(token).map_err(Problem::from)?;
    Ok(Verified {
        subject: claims.sub,
        roles: claims.roles,
    })
}

/// Page prefixes that need a session (`protected_prefixes`, comma-separated).
pub fn protected_prefixes() -> Vec<String> {
    setting("protected_prefixes")
        .unwrap_or_else(|| "/app/".to_string())
        .split(',')
        .map(str::trim)
        .filter(|p| p.starts_with('/'))
        .map(str::to_string)
        .collect()
}

/// A gateway setting; unreadable configuration counts as unset, since every
/// gateway setting has a safe default.
fn setting(name: &str) -> Option<String> {
    variables::get(name)
        .ok()
        .flatten()
        .filter(|v| !v.trim().is_empty())
}

/// 128 random bits as 32 hex digits (request ids, anonymous ids).
pub fn random_id() -> String {
    let high = wasip2::random::random::get_random_u64();
    let low = wasip2::random::random::get_random_u64();
    format!("{high:016x}{low:016x}")
}

/// The `cors` variable, parsed; `None` when unset.
fn cors_config() -> Result<Option<CorsConfig>, Problem> {
    let Some(text) = setting("cors") else {
        return Ok(None);
    };
    cors::parse(&text).map(Some).map_err(|err| {
        Problem::new(
            500,
            "invalid-configuration",
            "Invalid configuration",
            format!("variable cors: {err}"),
        )
    })
}

/// Runs one request through the whole chain.
pub fn handle(request: Request) -> Response {
    let request_id = RequestId {
        generate: random_id,
    };
    let rate_limit = RateLimit {
        exempt: &["/healthz"],
        check: check_limit,
        trusted_header: setting("rate_limit_client_header").map(|h| {
            let hops = setting("rate_limit_client_hops")
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            (h.trim().to_ascii_lowercase(), hops)
        }),
    };
    let authenticate = Authenticate {
        verify: verify_session,
    };
    let authorize = Authorize {
        protected_prefixes: protected_prefixes(),
        maintenance_token: setting("maintenance_token"),
    };
    let security_headers = SecurityHeaders {
        csp: setting("content_security_policy").unwrap_or_else(|| security::DEFAULT_CSP.into()),
        // `off` turns HSTS off (platforms read an empty variable as unset).
        hsts: match setting("strict_transport_security") {
            Some(value) if value.trim().eq_ignore_ascii_case("off") => String::new(),
            Some(value) => value.trim().to_string(),
            None => security::DEFAULT_HSTS.into(),
        },
    };
    let observe = Observe {
        monotonic_ms: || wasip2::clocks::monotonic_clock::now() as f64 / 1e6,
        wall_ms: || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        },
        random: random_id,
        log: |line| eprintln!("{line}"),
        // Before the response leaves: a write deferred past it would let a
        // client at full speed pile up instances still writing metrics.
        record: |deltas| {
            if let Err(err) =
                crate::portico::platform::counters::add(crate::observe::metrics::NAMESPACE, &deltas)
            {
                eprintln!("metrics: counters not updated: {err:?}");
            }
        },
        unrecorded: &["/healthz"],
    };
    let cors = Cors { load: cors_config };
    let csrf = Csrf { cors: cors_config };
    // The order of the chain: only the runtime's own `spin-*` fields kept,
    // headers every answer needs, the one path every later layer reads,
    // then CORS (which answers preflights itself), the cross-site check,
    // who is asking, how much they may ask, and only then whether they may
    // ask for this.
    let runtime_headers = RuntimeHeaders {
        client_address_header: variables::client_address_header,
    };
    let layers: [&dyn Middleware; 10] = [
        &request_id,
        &runtime_headers,
        &observe,
        &security_headers,
        &NormalizePath,
        &cors,
        &csrf,
        &authenticate,
        &rate_limit,
        &authorize,
    ];
    let router = routes();
    let endpoint = |mut request: Request| {
        let limit = crate::body::limit(&request, setting);
        // The upstream configuration is read here only for a body to send.
        let stream = crate::body::streams(&request)
            || (crate::body::announced(&request)
                && !router.claims(&request)
                && crate::upstream::streams_body(&request));
        crate::body::receive(&mut request, limit, stream)
            .and_then(|()| router.dispatch(&request))
            .unwrap_or_else(|problem| problem.into_response(&request.path))
    };
    Next::new(&layers, &endpoint).run(request)
}
