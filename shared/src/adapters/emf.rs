//! The Lambdas' metrics: the [`crate::telemetry`] vocabulary as CloudWatch Embedded Metric
//! Format lines on stdout (`metrics_cloudwatch_embedded`), which Lambda's log agent turns into
//! CloudWatch metrics in the [`NAMESPACE`] namespace: no API call, nothing added to init but
//! a recorder. Each label becomes a dimension; each invocation ends with [`Emf::flush`].

use metrics_cloudwatch_embedded::{Builder, Collector};

use crate::telemetry;

/// The CloudWatch namespace of Hookline's metrics (the dashboard and alarm in
/// `template.yaml` read it).
pub const NAMESPACE: &str = "Hookline";

/// The process's EMF recorder.
#[derive(Clone, Copy)]
pub struct Emf {
    collector: &'static Collector,
}

impl Emf {
    /// Installs the recorder for this process; `None` (logged, counted nowhere else) when one
    /// was installed already: metrics are then not written, and nothing else changes.
    pub fn install() -> Option<Self> {
        match Builder::new().cloudwatch_namespace(NAMESPACE).init() {
            Ok(collector) => {
                telemetry::describe();
                Some(Self { collector })
            }
            Err(e) => {
                telemetry::metrics_error("emf", &e);
                None
            }
        }
    }

    /// Writes what was recorded since the last flush as EMF lines on stdout, in one write
    /// (so no log line of another thread lands inside one); a failure is logged once.
    pub fn flush(&self) {
        self.flush_to(&mut std::io::stdout().lock());
    }

    /// [`Emf::flush`] into `out` (tests read the lines).
    pub fn flush_to(&self, out: &mut dyn std::io::Write) {
        let mut lines = Vec::new();
        let written = self
            .collector
            .flush(&mut lines)
            .and_then(|()| out.write_all(&lines))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            telemetry::metrics_error("emf", &e);
        }
    }
}
