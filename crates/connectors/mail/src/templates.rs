//! The email templates, kept as files so that the wording changes without a release: for
//! each [`Kind`] a subject (`<kind>.subject`), a text part (`<kind>.txt`) and an HTML part
//! (`<kind>.html`, auto-escaped), rendered by minijinja in strict mode — an undefined
//! variable is an error, never an empty string in a customer's email.
//!
//! **Checked at start** ([`Templates::load`]): every file must exist and parse, and every
//! variable a template uses must be one its kind provides ([`Kind::variables`]); the error
//! names the template and the variable, so a typo stops `l2f run` instead of a send.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};

/// The emails the hub sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Rule 8: terms must be accepted before a self-managed license is issued.
    AcceptTerms,
    /// Rule 8: the license, once issued.
    License,
    /// Rule 8: a reseller deal's license was sent.
    ResellerNotification,
    /// Rule 7: the 14-day SaaS auto-renewal notice the customers app sends.
    RenewalNotice,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [
        Kind::AcceptTerms,
        Kind::License,
        Kind::ResellerNotification,
        Kind::RenewalNotice,
    ];

    /// The template name (file stem, `EmailSent.template`, the `o:tag`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::AcceptTerms => "accept_terms",
            Kind::License => "license",
            Kind::ResellerNotification => "reseller_notification",
            Kind::RenewalNotice => "renewal_notice",
        }
    }

    /// The variables this kind's templates may use (the mapping provides exactly these).
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Kind::AcceptTerms => &[
                "recipient",
                "account_id",
                "subscription_id",
                "plan_sku",
                "seats",
                "deployment",
                "term_start",
                "term_end",
            ],
            Kind::License => &[
                "recipient",
                "account_id",
                "subscription_id",
                "license_id",
                "plan_sku",
                "seats",
                "starts_on",
                "expires_on",
            ],
            Kind::ResellerNotification => &[
                "recipient",
                "account_id",
                "subscription_id",
                "license_id",
                "licensee_email",
                "plan_sku",
                "seats",
                "starts_on",
                "expires_on",
            ],
            Kind::RenewalNotice => &[
                "recipient",
                "account_id",
                "subscription_id",
                "days_before_term_end",
                "term_end",
            ],
        }
    }
}

/// The three parts of one template.
const PARTS: [&str; 3] = ["subject", "txt", "html"];

/// Why the templates cannot be used; each names the template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template file is missing or unreadable.
    #[error("template {template}: cannot read {}: {message}", path.display())]
    Missing {
        /// `accept_terms.html`.
        template: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// A template does not parse.
    #[error("template {template}: {message}")]
    Syntax {
        /// The template.
        template: String,
        /// minijinja's message (with the line).
        message: String,
    },
    /// A template uses a variable its kind does not provide.
    #[error("template {template}: variable {variable} is not provided for {kind} emails (provided: {provided})")]
    Undefined {
        /// The template.
        template: String,
        /// The variable.
        variable: String,
        /// The kind.
        kind: &'static str,
        /// What the kind provides.
        provided: String,
    },
    /// Rendering failed (strict mode: an undefined value, a bad filter).
    #[error("template {template}: {message}")]
    Render {
        /// The template.
        template: String,
        /// minijinja's message.
        message: String,
    },
}

/// One email rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// The text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// Every template, loaded and checked.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// Loads every kind's templates from `dir` and checks them (see the module doc); then
    /// renders each once with sample values, so what strict mode would refuse at send time
    /// is refused now.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for kind in Kind::ALL {
            for part in PARTS {
                let name = format!("{}.{part}", kind.name());
                let path = dir.join(&name);
                let source =
                    std::fs::read_to_string(&path).map_err(|e| TemplateError::Missing {
                        template: name.clone(),
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                env.add_template_owned(name.clone(), source).map_err(|e| {
                    TemplateError::Syntax {
                        template: name.clone(),
                        message: e.to_string(),
                    }
                })?;
                let t = env.get_template(&name).map_err(|e| TemplateError::Syntax {
                    template: name.clone(),
                    message: e.to_string(),
                })?;
                let mut used: Vec<String> = t.undeclared_variables(false).into_iter().collect();
                used.sort();
                if let Some(v) = used
                    .iter()
                    .find(|v| !kind.variables().contains(&v.as_str()))
                {
                    return Err(TemplateError::Undefined {
                        template: name,
                        variable: v.clone(),
                        kind: kind.name(),
                        provided: kind.variables().join(", "),
                    });
                }
            }
        }
        let templates = Templates { env };
        for kind in Kind::ALL {
            let sample: BTreeMap<&'static str, String> = kind
                .variables()
                .iter()
                .map(|v| (*v, format!("sample-{v}")))
                .collect();
            templates.render(kind, &sample)?;
        }
        Ok(templates)
    }

    /// Renders `kind` with `vars`.
    pub fn render(
        &self,
        kind: Kind,
        vars: &BTreeMap<&'static str, String>,
    ) -> Result<Rendered, TemplateError> {
        let ctx = minijinja::Value::from_pairs(vars.iter().map(|(k, v)| (*k, v.clone())));
        let part = |p: &str| {
            let name = format!("{}.{p}", kind.name());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| TemplateError::Render {
                    template: name,
                    message: e.to_string(),
                })
        };
        let subject = part("subject")?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered {
            subject,
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_all(dir: &Path) {
        for kind in Kind::ALL {
            let first = kind.variables()[1];
            std::fs::write(
                dir.join(format!("{}.subject", kind.name())),
                format!("{} for {{{{ {first} }}}}\n", kind.name()),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{}.txt", kind.name())),
                "Hello {{ recipient }}",
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{}.html", kind.name())),
                "<p>Hello {{ recipient }}</p>",
            )
            .unwrap();
        }
    }

    #[test]
    fn the_shipped_templates_load_and_render_every_kind() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/templates/mail");
        let t = Templates::load(&dir).unwrap();
        for kind in Kind::ALL {
            let vars = kind
                .variables()
                .iter()
                .map(|v| (*v, format!("<{v}>")))
                .collect();
            let r = t.render(kind, &vars).unwrap();
            assert!(
                !r.subject.is_empty() && !r.subject.contains('\n'),
                "{kind:?}"
            );
            assert!(r.text.contains("<recipient>"), "{kind:?}: {}", r.text);
            assert!(
                r.html.contains("&lt;recipient&gt;") && !r.html.contains("<recipient>"),
                "{kind:?}: the HTML part escapes: {}",
                r.html
            );
        }
    }

    #[test]
    fn a_variable_not_provided_is_an_error_at_start_naming_template_and_variable() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        assert!(Templates::load(dir.path()).is_ok());
        std::fs::write(
            dir.path().join("license.html"),
            "<p>{{ license_id }} until {{ expires_at }}</p>",
        )
        .unwrap();
        let e = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("template license.html") && e.contains("variable expires_at"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_broken_template_is_an_error_at_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        std::fs::remove_file(dir.path().join("renewal_notice.txt")).unwrap();
        let e = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("template renewal_notice.txt"), "{e}");
        write_all(dir.path());
        std::fs::write(dir.path().join("accept_terms.subject"), "{{ seats ").unwrap();
        let e = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("template accept_terms.subject"), "{e}");
    }

    #[test]
    fn strict_mode_refuses_what_would_render_empty() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path());
        // `seats.count` is an attribute of a provided variable: declared, but undefined.
        std::fs::write(
            dir.path().join("accept_terms.txt"),
            "{{ seats.count }} seats",
        )
        .unwrap();
        let e = Templates::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("template accept_terms.txt"), "{e}");
    }
}
