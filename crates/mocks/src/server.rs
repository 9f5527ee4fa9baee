//! Serving the mocks on loopback: configuration, one HTTP and one HTTPS listener per
//! app, a connection loop that lets fault rules drop a connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::clock::{Clock, ClockConfig};
use crate::kit::{ConnKill, Scheme};
use crate::store::Store;
use crate::tls::Tls;
use crate::{customers, license, mail, marketo, salesforce, zuora, Error, Listen, Result};

/// Configuration of all mocks of one process (TOML or JSON; every field has a default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MocksConfig {
    /// Address to bind; only loopback addresses are accepted.
    pub host: IpAddr,
    /// SQLite file for state that survives restarts; none keeps state in memory only.
    pub sqlite: Option<PathBuf>,
    /// Where to write the CA certificate (PEM) of the HTTPS listeners.
    pub ca_file: Option<PathBuf>,
    /// A certificate chain (PEM) to serve instead of a generated one; needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The Salesforce mock.
    pub salesforce: salesforce::Config,
    /// The Zuora mock.
    pub zuora: zuora::Config,
    /// The Marketo mock.
    pub marketo: marketo::Config,
    /// The Mailgun mock.
    pub mail: mail::Config,
    /// The customers app.
    pub customers: customers::Config,
    /// The license service.
    pub license: license::Config,
    /// The one clock of all apps (wall or simulated).
    pub clock: ClockConfig,
}

impl Default for MocksConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sqlite: None,
            ca_file: None,
            tls_cert: None,
            tls_key: None,
            salesforce: Default::default(),
            zuora: Default::default(),
            marketo: Default::default(),
            mail: Default::default(),
            customers: Default::default(),
            license: Default::default(),
            clock: Default::default(),
        }
    }
}

impl MocksConfig {
    /// Reads a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Serve only the named apps (others are disabled).
    pub fn only(&mut self, names: &[String]) -> Result<()> {
        for n in names {
            if !APPS.contains(&n.as_str()) {
                return Err(Error::Config(format!(
                    "unknown app {n:?}; known: {}",
                    APPS.join(", ")
                )));
            }
        }
        let on = |a: &str| names.iter().any(|n| n == a);
        self.salesforce.listen.enabled = on("salesforce");
        self.zuora.listen.enabled = on("zuora");
        self.marketo.listen.enabled = on("marketo");
        self.mail.listen.enabled = on("mail");
        self.customers.listen.enabled = on("customers");
        self.license.listen.enabled = on("license");
        Ok(())
    }

    /// Builds each enabled app's router from this configuration, all reading one clock
    /// made from `clock`.
    pub fn routers(
        &self,
        store: Option<Arc<Store>>,
    ) -> Result<Vec<(&'static str, Router, Listen)>> {
        let clock = Clock::from_config(&self.clock, store.clone())?;
        self.routers_with_clock(store, &clock)
    }

    /// Builds each enabled app's router, all reading business time from `clock`.
    pub fn routers_with_clock(
        &self,
        store: Option<Arc<Store>>,
        clock: &Arc<Clock>,
    ) -> Result<Vec<(&'static str, Router, Listen)>> {
        let mut out = Vec::new();
        let s = || store.clone();
        let c = || clock.clone();
        if self.salesforce.listen.enabled {
            let app = salesforce::Salesforce::with_clock(self.salesforce.clone(), s(), c())?;
            out.push((
                "salesforce",
                salesforce::router(app),
                self.salesforce.listen.clone(),
            ));
        }
        if self.zuora.listen.enabled {
            let app = zuora::Zuora::with_clock(self.zuora.clone(), s(), c())?;
            out.push(("zuora", zuora::router(app), self.zuora.listen.clone()));
        }
        if self.marketo.listen.enabled {
            let app = marketo::Marketo::with_clock(self.marketo.clone(), s(), c())?;
            out.push(("marketo", marketo::router(app), self.marketo.listen.clone()));
        }
        if self.mail.listen.enabled {
            let app = mail::Mail::with_clock(self.mail.clone(), s(), c())?;
            out.push(("mail", mail::router(app), self.mail.listen.clone()));
        }
        if self.customers.listen.enabled {
            let app = customers::Customers::with_clock(self.customers.clone(), s(), c())?;
            out.push((
                "customers",
                customers::router(app),
                self.customers.listen.clone(),
            ));
        }
        if self.license.listen.enabled {
            let app = license::License::with_clock(self.license.clone(), s(), c())?;
            out.push(("license", license::router(app), self.license.listen.clone()));
        }
        Ok(out)
    }
}

/// The names of the apps, as used by `only` and in the endpoints list.
pub const APPS: &[&str] = &[
    "salesforce",
    "zuora",
    "marketo",
    "mail",
    "customers",
    "license",
];

/// Where a running app can be reached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    /// The app's name.
    pub app: String,
    /// Its plain HTTP base URL.
    pub http: String,
    /// Its HTTPS base URL, if served.
    pub https: Option<String>,
}

/// Mocks being served; dropping it (or [`Running::shutdown`]) stops accepting.
pub struct Running {
    /// Where each app listens.
    pub endpoints: Vec<Endpoint>,
    /// The CA certificate (PEM) of the HTTPS listeners.
    pub ca_pem: String,
    clock: Arc<Clock>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// The endpoint of one app.
    pub fn endpoint(&self, app: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.app == app)
    }

    /// The clock every app of this process reads: a test or the demo in the same process
    /// advances it (`running.clock().advance("30d")`) as `POST /__admin/clock` would.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// Stops accepting connections and waits for the accept loops to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts every enabled app on its listeners.
pub async fn start(cfg: &MocksConfig) -> Result<Running> {
    if !cfg.host.is_loopback() {
        return Err(Error::Config(format!(
            "host {} is not a loopback address; the mocks serve loopback only",
            cfg.host
        )));
    }
    let store = match &cfg.sqlite {
        Some(p) => Some(Arc::new(Store::open(p)?)),
        None => None,
    };
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => Tls::load(cert, key)?,
        (None, None) => Tls::generate(&["localhost", "127.0.0.1", "::1"])?,
        _ => {
            return Err(Error::Config(
                "tls_cert and tls_key are given together or not at all".into(),
            ))
        }
    };
    if let Some(p) = &cfg.ca_file {
        tls.write_ca(p)?;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let (stop, stop_rx) = watch::channel(false);
    let mut endpoints = Vec::new();
    let mut tasks = Vec::new();
    let clock = Clock::from_config(&cfg.clock, store.clone())?;
    for (name, router, listen) in cfg.routers_with_clock(store, &clock)? {
        let http = TcpListener::bind(SocketAddr::new(cfg.host, listen.http_port)).await?;
        let http_url = url("http", http.local_addr()?);
        tasks.push(spawn_accept(http, router.clone(), None, stop_rx.clone()));
        let mut https_url = None;
        if let Some(port) = listen.https_port {
            let l = TcpListener::bind(SocketAddr::new(cfg.host, port)).await?;
            https_url = Some(url("https", l.local_addr()?));
            tasks.push(spawn_accept(
                l,
                router,
                Some(acceptor.clone()),
                stop_rx.clone(),
            ));
        }
        tracing::info!(app = name, http = %http_url, https = ?https_url, "mock serving");
        endpoints.push(Endpoint {
            app: name.to_string(),
            http: http_url,
            https: https_url,
        });
    }
    if cfg.clock.tick_ms > 0 {
        tasks.push(spawn_ticker(
            clock.clone(),
            Duration::from_millis(cfg.clock.tick_ms),
            stop_rx.clone(),
        ));
    }
    Ok(Running {
        endpoints,
        ca_pem: tls.ca_pem,
        clock,
        stop,
        tasks,
    })
}

/// Runs what became due every `every` (the wall clock moves by itself; a simulated clock's
/// advances run their due work themselves, so a tick finds nothing more to do).
fn spawn_ticker(
    clock: Arc<Clock>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let c = clock.clone();
                    let _ = tokio::task::spawn_blocking(move || c.run_due()).await;
                }
                _ = stop.changed() => break,
            }
        }
    })
}

fn url(scheme: &str, addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{scheme}://{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("{scheme}://[{}]:{}", a.ip(), a.port()),
    }
}

/// Accepts connections until told to stop; each connection is served on its own task.
pub fn spawn_accept(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    // A second handle on the socket, so a reset fault can abort it.
                    let Ok((stream, spare)) = split_handle(stream) else { continue };
                    let router = router.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let killed = match tls {
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(s) => serve_conn(s, router, "https").await,
                                Err(_) => false,
                            },
                            None => serve_conn(stream, router, "http").await,
                        };
                        if killed {
                            // Linger 0: closing sends RST, as a crashed server's kernel would.
                            let _ = socket2::SockRef::from(&spare).set_linger(Some(Duration::ZERO));
                        }
                        drop(spare);
                    });
                }
                _ = stop.changed() => break,
            }
        }
    })
}

/// The stream back, and a duplicate handle on the same socket.
fn split_handle(
    stream: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let std = stream.into_std()?;
    let spare = std.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std)?, spare))
}

/// Serves one connection; true when a fault rule asked for it to be dropped.
async fn serve_conn<I>(io: I, router: Router, scheme: &'static str) -> bool
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let k = kill.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnKill(k.clone()));
        req.extensions_mut().insert(Scheme(scheme));
        router.clone().oneshot(req.map(Body::new))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::select! {
        _ = conn => false,
        // A fault rule asked for the connection to be dropped without an answer.
        _ = kill.notified() => true,
    }
}

/// Overrides a command line may give on top of the configuration file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Serve only these apps.
    pub only: Vec<String>,
    /// SQLite file for persistence.
    pub sqlite: Option<PathBuf>,
    /// Where to write the CA certificate.
    pub ca_file: Option<PathBuf>,
    /// First port: apps get `base + i` for HTTP and `base + 10 + i` for HTTPS, in the
    /// order of [`APPS`].
    pub port_base: Option<u16>,
}

impl MocksConfig {
    /// Every app's listener, in the order of [`APPS`].
    fn listens(&mut self) -> [&mut Listen; 6] {
        [
            &mut self.salesforce.listen,
            &mut self.zuora.listen,
            &mut self.marketo.listen,
            &mut self.mail.listen,
            &mut self.customers.listen,
            &mut self.license.listen,
        ]
    }

    /// Serves plain HTTP only (no HTTPS listeners), e.g. for load tests.
    pub fn without_https(&mut self) {
        for l in self.listens() {
            l.https_port = None;
        }
    }

    /// Applies command-line overrides.
    pub fn apply(&mut self, o: &Overrides) -> Result<()> {
        if !o.only.is_empty() {
            self.only(&o.only)?;
        }
        if o.sqlite.is_some() {
            self.sqlite = o.sqlite.clone();
        }
        if o.ca_file.is_some() {
            self.ca_file = o.ca_file.clone();
        }
        if let Some(base) = o.port_base {
            for (i, l) in self.listens().into_iter().enumerate() {
                let i = i as u16;
                l.http_port = base
                    .checked_add(i)
                    .ok_or_else(|| Error::Config("port_base too high".into()))?;
                if l.https_port.is_some() {
                    l.https_port = Some(
                        base.checked_add(10 + i)
                            .ok_or_else(|| Error::Config("port_base too high".into()))?,
                    );
                }
            }
            // With fixed ports the hub's callout receiver has a fixed address too (see
            // deploy/l2f.mocks.toml): Zuora's callouts go there unless configured otherwise.
            if self.zuora.callout_url.is_none() {
                let port = base
                    .checked_add(CALLOUT_PORT_OFFSET)
                    .ok_or_else(|| Error::Config("port_base too high".into()))?;
                self.zuora.callout_url = Some(format!("http://127.0.0.1:{port}/callouts/zuora"));
                self.zuora
                    .callout_username
                    .get_or_insert_with(|| CALLOUT_USERNAME.into());
                self.zuora
                    .callout_password
                    .get_or_insert_with(|| CALLOUT_PASSWORD.into());
            }
        }
        Ok(())
    }
}

/// With `--port-base N`, Zuora's callouts go to `http://127.0.0.1:{N+100}/callouts/zuora`.
pub const CALLOUT_PORT_OFFSET: u16 = 100;
/// The callout receiver's basic-auth user with `--port-base` (test-only credentials).
pub const CALLOUT_USERNAME: &str = "l2f-callouts";
/// The callout receiver's basic-auth password with `--port-base` (test-only credentials).
pub const CALLOUT_PASSWORD: &str = "l2f-callout-secret";

/// Starts the mocks, writes their endpoints as JSON to `endpoints_file` (written
/// whole, once every listener is bound), and serves until SIGINT or SIGTERM.
pub async fn serve_until_signal(cfg: &MocksConfig, endpoints_file: Option<&Path>) -> Result<()> {
    let running = start(cfg).await?;
    let listing = serde_json::json!({
        "endpoints": running.endpoints,
        "ca_file": cfg.ca_file,
    });
    let text = serde_json::to_string_pretty(&listing).map_err(|e| Error::Config(e.to_string()))?;
    match endpoints_file {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, &text)?;
            std::fs::rename(&tmp, p)?;
        }
        None => println!("{text}"),
    }
    wait_for_signal().await?;
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
