//! Diagnostics: what went wrong, where, and what to do about it.
//!
//! Every kind of problem is one variant of [`Kind`], with its message (from
//! `thiserror`), a stable code such as `septa::channel::id_range` and help text
//! (from `miette`'s derive). A [`Diagnostic`] places a kind in a source file at
//! a byte span; a [`Report`] is the list a front end or the validator returns.
//! Warnings are kinds whose severity is `Warning`; they never make a load fail.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, MietteDiagnostic, Severity, SourceSpan};

pub use crate::kind::Kind;

/// One source text: the system description, or a board profile.
#[derive(Debug)]
pub struct Source {
    /// The name shown in messages (the path as the user gave it).
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: text.into(),
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// A byte range in a source text. Spans never take part in model equality:
/// two descriptions with the same meaning are equal wherever they were written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

impl From<std::ops::Range<usize>> for Span {
    fn from(r: std::ops::Range<usize>) -> Span {
        Span::new(r.start, r.end)
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}
impl Eq for Span {}

/// One problem, placed in a source.
#[derive(Debug)]
pub struct Diagnostic {
    pub kind: Kind,
    pub source: Arc<Source>,
    /// Where the problem is; `None` for problems of the whole file.
    pub span: Option<Span>,
    /// The text under the caret; defaults to a short form of the message.
    pub label: Option<String>,
}

impl Diagnostic {
    pub fn new(kind: Kind, source: &Arc<Source>, span: Option<Span>) -> Diagnostic {
        Diagnostic {
            kind,
            source: source.clone(),
            span,
            label: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    /// The stable code, such as `septa::channel::id_range`.
    pub fn code(&self) -> String {
        miette::Diagnostic::code(&self.kind)
            .map(|c| c.to_string())
            .unwrap_or_else(|| "septa::unknown".to_string())
    }

    pub fn is_warning(&self) -> bool {
        matches!(
            miette::Diagnostic::severity(&self.kind),
            Some(Severity::Warning) | Some(Severity::Advice)
        )
    }

    /// 1-based line and column of the start of the span (1:1 without one).
    pub fn line_col(&self) -> (usize, usize) {
        self.span
            .map(|s| self.source.line_col(s.start))
            .unwrap_or((1, 1))
    }

    /// The one-line form: `file:line:col: error[code]: message`.
    pub fn one_line(&self) -> String {
        let (line, col) = self.line_col();
        let sev = if self.is_warning() {
            "warning"
        } else {
            "error"
        };
        format!(
            "{}:{line}:{col}: {sev}[{}]: {}",
            self.source.name,
            self.code(),
            self.kind
        )
    }

    /// The same problem as a self-contained miette diagnostic (source text,
    /// label, help), for graphical rendering.
    pub fn to_miette(&self) -> miette::Report {
        let mut d = MietteDiagnostic::new(self.kind.to_string())
            .with_code(self.code())
            .with_severity(if self.is_warning() {
                Severity::Warning
            } else {
                Severity::Error
            });
        if let Some(help) = miette::Diagnostic::help(&self.kind) {
            d = d.with_help(help.to_string());
        }
        if let Some(span) = self.span {
            let len = span.end.saturating_sub(span.start).max(1);
            let label = self.label.clone().unwrap_or_else(|| "here".to_string());
            d = d.with_label(LabeledSpan::new_with_span(
                Some(label),
                SourceSpan::new(span.start.into(), len),
            ));
        }
        miette::Report::new(d).with_source_code(miette::NamedSource::new(
            self.source.name.clone(),
            self.source.text.clone(),
        ))
    }

    /// The graphical rendering (source excerpt, caret, help), without colour.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_width(100);
        let report = self.to_miette();
        // Rendering into a String cannot fail.
        let _ = handler.render_report(&mut out, report.as_ref());
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

/// The problems a load found. A `Report` returned as `Err` holds at least one
/// error; warnings found along the way are kept in it too.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn single(d: Diagnostic) -> Report {
        Report {
            diagnostics: vec![d],
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_warning())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_warning())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Every diagnostic in its one-line form, one per line, in source order.
    pub fn one_line(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.one_line() + "\n")
            .collect()
    }

    /// Every diagnostic rendered graphically.
    pub fn render(&self) -> String {
        self.diagnostics.iter().map(|d| d.render()).collect()
    }

    /// Orders diagnostics by file position so output reads top to bottom.
    pub(crate) fn sort(&mut self) {
        self.diagnostics
            .sort_by_key(|d| (d.source.name.clone(), d.span.map(|s| s.start).unwrap_or(0)));
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        write!(
            f,
            "{n} error{} in the system description",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Report {}

/// Collects diagnostics while a stage runs.
pub(crate) struct Sink {
    pub source: Arc<Source>,
    pub out: Vec<Diagnostic>,
}

impl Sink {
    pub fn new(source: &Arc<Source>) -> Sink {
        Sink {
            source: source.clone(),
            out: Vec::new(),
        }
    }

    pub fn emit(&mut self, kind: Kind, span: Option<Span>) {
        self.out.push(Diagnostic::new(kind, &self.source, span));
    }
}
