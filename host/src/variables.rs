//! Variable resolution, as `spin up` does it: the application's `[variables]`
//! in `spin.toml` (with their defaults), overridden by `SPIN_VARIABLE_<NAME>`
//! environment variables, overridden by `--var name=value`; then the
//! component's `[component.<id>.variables]` templates (`"{{ name }}"`) are
//! rendered from them. A required variable left without a value is an error
//! at startup, not at the first request.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    variables: BTreeMap<String, Declaration>,
    #[serde(default)]
    trigger: Triggers,
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

#[derive(Debug, Default, Deserialize)]
struct Triggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
struct HttpTrigger {
    component: String,
}

#[derive(Debug, Default, Deserialize)]
struct Declaration {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Debug, Deserialize)]
struct Component {
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
}

/// The application's variables and the component that serves HTTP.
pub struct App {
    declarations: BTreeMap<String, Declaration>,
    component_templates: BTreeMap<String, String>,
    sqlite_databases: crate::spin::sqlite::Databases,
}

impl App {
    pub fn load(manifest: &Path) -> Result<App> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let parsed: Manifest =
            toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
        let Some(trigger) = parsed.trigger.http.first() else {
            bail!("{} has no [[trigger.http]]", manifest.display());
        };
        let Some(component) = parsed.component.get(&trigger.component) else {
            bail!(
                "{}: the HTTP trigger names component {:?}, which is not defined",
                manifest.display(),
                trigger.component
            );
        };
        for (name, declaration) in &parsed.variables {
            if declaration.required && declaration.default.is_some() {
                bail!(
                    "variable {name:?} is required and has a default; Spin allows one or the other"
                );
            }
            if !declaration.required && declaration.default.is_none() {
                bail!("variable {name:?} needs a default or `required = true`");
            }
        }
        let mut defined: Vec<String> = parsed
            .component
            .values()
            .flat_map(|c| c.sqlite_databases.iter().cloned())
            .collect();
        defined.sort();
        defined.dedup();
        Ok(App {
            declarations: parsed.variables,
            component_templates: component.variables.clone(),
            sqlite_databases: crate::spin::sqlite::Databases {
                granted: component.sqlite_databases.clone(),
                defined,
            },
        })
    }

    /// The SQLite databases the HTTP component is granted, and those any
    /// component of the app names.
    pub fn sqlite_databases(&self) -> &crate::spin::sqlite::Databases {
        &self.sqlite_databases
    }

    /// Names of the required variables that have no value in `resolved`.
    pub fn missing_required(&self, resolved: &BTreeMap<String, String>) -> Vec<&str> {
        self.declarations
            .iter()
            .filter(|(name, d)| d.required && !resolved.contains_key(*name))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    pub fn is_secret(&self, name: &str) -> bool {
        self.declarations.get(name).is_some_and(|d| d.secret)
    }

    /// The application variables from defaults, `env` (`SPIN_VARIABLE_*`) and
    /// `overrides` (`--var`), without checking required ones.
    pub fn application_values(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<BTreeMap<String, String>> {
        let mut values: BTreeMap<String, String> = self
            .declarations
            .iter()
            .filter_map(|(name, d)| d.default.clone().map(|v| (name.clone(), v)))
            .collect();
        for (key, value) in env {
            if let Some(name) = key.strip_prefix("SPIN_VARIABLE_") {
                let name = name.to_ascii_lowercase();
                if self.declarations.contains_key(&name) {
                    values.insert(name, value);
                }
            }
        }
        for (name, value) in overrides {
            if !self.declarations.contains_key(name) {
                bail!(
                    "--var {name}: no variable {name:?} is declared in the manifest's [variables]"
                );
            }
            values.insert(name.clone(), value.clone());
        }
        Ok(values)
    }

    /// Checks required variables and renders the component's variables.
    pub fn component_values(
        &self,
        app: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        let missing = self.missing_required(app);
        if !missing.is_empty() {
            let hints: Vec<String> = missing
                .iter()
                .map(|name| {
                    format!(
                        "--var {name}=... or SPIN_VARIABLE_{}",
                        name.to_ascii_uppercase()
                    )
                })
                .collect();
            bail!(
                "required variable(s) without a value: {} (set with {})",
                missing.join(", "),
                hints.join("; ")
            );
        }
        let mut out = BTreeMap::new();
        for (name, template) in &self.component_templates {
            if let Some(value) =
                render(template, app).with_context(|| format!("component variable {name:?}"))?
            {
                out.insert(name.clone(), value);
            }
        }
        Ok(out)
    }
}

/// Renders `{{ name }}` references; `None` when one refers to a variable
/// without a value.
fn render(template: &str, values: &BTreeMap<String, String>) -> Result<Option<String>> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unclosed `{{{{` in {template:?}");
        };
        let name = after[..end].trim();
        match values.get(name) {
            Some(value) => out.push_str(value),
            None => return Ok(None),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// Parses `name=value`.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("expected name=value, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spin.toml");
        std::fs::write(
            &path,
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "x.wasm"
sqlite_databases = ["default", "eu"]
[component.other]
source = "y.wasm"
sqlite_databases = ["us", "eu"]
[component.c.variables]
greeting = "{{ greeting }}, world"
token = "{{token}}"
"#,
        )
        .unwrap();
        App::load(&path).unwrap()
    }

    #[test]
    fn precedence_is_default_then_env_then_flag() {
        let app = app();
        let env = [("SPIN_VARIABLE_GREETING".to_string(), "hi".to_string())];
        let values = app.application_values(env.clone(), &[]).unwrap();
        assert_eq!(values["greeting"], "hi");
        let values = app
            .application_values(env, &[("greeting".into(), "hey".into())])
            .unwrap();
        assert_eq!(values["greeting"], "hey");
    }

    #[test]
    fn missing_required_variable_is_reported_by_name() {
        let app = app();
        let values = app.application_values([], &[]).unwrap();
        let err = app.component_values(&values).unwrap_err().to_string();
        assert!(err.contains("token"), "{err}");
        assert!(err.contains("SPIN_VARIABLE_TOKEN"), "{err}");
    }

    #[test]
    fn component_templates_are_rendered() {
        let app = app();
        let values = app
            .application_values([], &[("token".into(), "s3cret".into())])
            .unwrap();
        let component = app.component_values(&values).unwrap();
        assert_eq!(component["greeting"], "hello, world");
        assert_eq!(component["token"], "s3cret");
        assert!(app.is_secret("token"));
    }

    #[test]
    fn sqlite_databases_granted_and_defined() {
        let databases = app().sqlite_databases().clone();
        assert_eq!(databases.granted, ["default", "eu"]);
        assert_eq!(databases.defined, ["default", "eu", "us"]);
    }

    #[test]
    fn undeclared_override_is_an_error() {
        assert!(
            app()
                .application_values([], &[("nope".into(), "1".into())])
                .is_err()
        );
    }
}
