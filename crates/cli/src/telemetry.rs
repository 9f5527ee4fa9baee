//! Logs and traces: log lines on stderr (text or JSON), and, when a collector is configured
//! (`[traces]` or the standard `OTEL_*` variables), the global OpenTelemetry tracer provider
//! whose spans (the bus's, one per handler call) go out over OTLP/HTTP. Built once, before the command runs (`l2f run` reads its `[traces]` first), so
//! commands that export nothing never build an exporter.

use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use l2f_bus::config::{OtlpProtocol, TracesConfig};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::LogFormat;

static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Installs the process's subscriber: log lines filtered by `RUST_LOG` (default `info`), and,
/// with `traces` naming a collector (or the `OTEL_*` variables doing so), the exporter of the
/// bus's spans. Returns the URL spans go to, if any.
pub fn init(
    format: LogFormat,
    traces: Option<&TracesConfig>,
    log_file: Option<&std::path::Path>,
) -> Result<Option<String>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match log_file {
        // The demo's progress display owns stderr: its log lines go to a file.
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the log file's folder {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            let fmt = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file));
            match format {
                LogFormat::Text => fmt.boxed(),
                LogFormat::Json => fmt.json().flatten_event(true).boxed(),
            }
        }
        None => {
            let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
            match format {
                LogFormat::Text => fmt.boxed(),
                LogFormat::Json => fmt.json().flatten_event(true).boxed(),
            }
        }
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .init();
    let Some((provider, url)) = traces.map(provider).transpose()?.flatten() else {
        return Ok(None);
    };
    opentelemetry::global::set_tracer_provider(provider.clone());
    *PROVIDER.lock().unwrap_or_else(|p| p.into_inner()) = Some(provider);
    l2f_bus::trace::enable();
    Ok(Some(url))
}

/// The share of traces kept: `traces.sample_ratio`, else OpenTelemetry's sampler variables.
fn sample_ratio(cfg: &TracesConfig, env: impl Fn(&str) -> Option<String>) -> Result<f64> {
    let ratio = match cfg.sample_ratio {
        Some(r) => r,
        None => match env("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            Some("traceidratio") | Some("parentbased_traceidratio") => {
                let arg = env("OTEL_TRACES_SAMPLER_ARG").unwrap_or_else(|| "1.0".into());
                arg.trim().parse().with_context(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG = {arg:?}: not a ratio between 0 and 1")
                })?
            }
            _ => 1.0,
        },
    };
    if !(0.0..=1.0).contains(&ratio) {
        bail!("traces.sample_ratio = {ratio}: a share between 0.0 and 1.0");
    }
    Ok(ratio)
}

/// Where spans go: the configured endpoint, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the
/// whole URL), else `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL, `/v1/traces` appended).
fn endpoint(cfg: &TracesConfig, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let base = |url: &str| {
        let url = url.trim_end_matches('/');
        if url.ends_with("/v1/traces") {
            url.to_string()
        } else {
            format!("{url}/v1/traces")
        }
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    if let Some(url) = nonempty(cfg.otlp_endpoint.clone()) {
        return Some(base(&url));
    }
    if let Some(url) = nonempty(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        return Some(url);
    }
    nonempty(env("OTEL_EXPORTER_OTLP_ENDPOINT")).map(|u| base(&u))
}

fn protocol(cfg: &TracesConfig, env: impl Fn(&str) -> Option<String>) -> Result<Protocol> {
    if let Some(p) = cfg.protocol {
        return Ok(match p {
            OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
            OtlpProtocol::HttpJson => Protocol::HttpJson,
        });
    }
    let var =
        env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match var.as_deref().map(str::trim) {
        None | Some("") | Some("http/protobuf") => Ok(Protocol::HttpBinary),
        Some("http/json") => Ok(Protocol::HttpJson),
        Some(other) => bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL = {other:?}: l2f exports over http/protobuf or http/json (traces.protocol); point it at the collector's OTLP/HTTP port (4318)"
        ),
    }
}

/// The tracer provider exporting to the configured collector, with the URL; `None` when no
/// endpoint is configured.
fn provider(cfg: &TracesConfig) -> Result<Option<(SdkTracerProvider, String)>> {
    let env = |k: &str| std::env::var(k).ok();
    let Some(url) = endpoint(cfg, env) else {
        return Ok(None);
    };
    let protocol = protocol(cfg, env)?;
    // One ratio for the bus's check of a parent and the SDK's sampler of a new trace's root:
    // both keep a trace by its id, so every connector keeps or drops the same whole traces.
    let ratio = sample_ratio(cfg, env)?;
    l2f_bus::trace::set_sample_ratio(ratio);
    let service = cfg
        .service_name
        .clone()
        .or_else(|| env("OTEL_SERVICE_NAME"))
        .unwrap_or_else(|| "l2f".into());
    // The blocking HTTP client is built (and later dropped) off the async runtime's threads.
    let build_url = url.clone();
    let exporter = std::thread::spawn(move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(build_url)
            .with_protocol(protocol)
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP exporter panicked"))?
    .with_context(|| format!("traces.otlp_endpoint: cannot export to {url}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    Ok(Some((provider, url)))
}

/// Flushes the spans not yet exported (at exit; blocks up to the exporter's timeout).
pub fn shutdown() {
    let provider = PROVIDER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(p) = provider {
        // Off the runtime: the exporter's client blocks.
        let _ = std::thread::spawn(move || {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: flushing traces: {e}");
            }
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_endpoint_comes_from_the_config_then_otels_variables() {
        let none = TracesConfig::default();
        assert_eq!(endpoint(&none, env(&[])), None);
        assert_eq!(
            endpoint(
                &none,
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])
            ),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            endpoint(
                &none,
                env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318/custom"),
                ])
            ),
            Some("http://t:4318/custom".into())
        );
        let set = TracesConfig {
            otlp_endpoint: Some("http://cfg:4318".into()),
            ..TracesConfig::default()
        };
        assert_eq!(
            endpoint(
                &set,
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
            ),
            Some("http://cfg:4318/v1/traces".into())
        );
    }

    #[test]
    fn the_sample_ratio_comes_from_the_config_then_otels_sampler_variables() {
        let none = TracesConfig::default();
        assert_eq!(sample_ratio(&none, env(&[])).unwrap(), 1.0);
        let vars = [
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ];
        assert_eq!(sample_ratio(&none, env(&vars)).unwrap(), 0.25);
        let set = TracesConfig {
            sample_ratio: Some(1.5),
            ..TracesConfig::default()
        };
        let e = sample_ratio(&set, env(&vars)).unwrap_err().to_string();
        assert!(e.contains("traces.sample_ratio = 1.5"), "{e}");
    }

    #[test]
    fn grpc_is_refused_with_the_port_to_use() {
        let e = protocol(
            &TracesConfig::default(),
            env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"grpc\"") && e.contains("4318"), "{e}");
        assert!(matches!(
            protocol(
                &TracesConfig::default(),
                env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])
            ),
            Ok(Protocol::HttpJson)
        ));
    }
}
