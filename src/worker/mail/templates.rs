//! Mail templates: the placeholders PocketBase's templates use (`{APP_NAME}`, `{APP_URL}`,
//! `{TOKEN}`, `{OTP}`) filled into a collection's subject and HTML body.
//!
//! It owns substitution only. It must not pick templates or send anything. Values are
//! HTML-escaped in the body (an app name with `<` must not become markup) and left as they are
//! in the subject, which is plain text.

use crate::worker::records::schema::collection::EmailTemplate;

/// The values a template may refer to; an absent one renders as empty.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub app_name: String,
    pub app_url: String,
    pub token: String,
    pub otp: String,
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fill(text: &str, vars: &Vars, escape: bool) -> String {
    let value = |v: &str| if escape { escape_html(v) } else { v.to_owned() };
    // The app URL is used as a link prefix in the templates; a trailing slash would double up.
    text.replace("{APP_NAME}", &value(&vars.app_name))
        .replace("{APP_URL}", &value(vars.app_url.trim_end_matches('/')))
        .replace("{TOKEN}", &value(&vars.token))
        .replace("{OTP}", &value(&vars.otp))
}

/// The rendered `(subject, html)` of `template`.
pub fn render(template: &EmailTemplate, vars: &Vars) -> (String, String) {
    (fill(&template.subject, vars, false), fill(&template.body, vars, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder_and_escapes_only_the_body() {
        let t = EmailTemplate { subject: "{APP_NAME} <code>".into(), body: "<a href=\"{APP_URL}/x/{TOKEN}\">{APP_NAME}</a> {OTP}".into() };
        let vars = Vars { app_name: "A&B".into(), app_url: "http://h/".into(), token: "t.k.n".into(), otp: "123".into() };
        let (subject, html) = render(&t, &vars);
        assert_eq!(subject, "A&B <code>");
        assert_eq!(html, "<a href=\"http://h/x/t.k.n\">A&amp;B</a> 123");
    }
}
