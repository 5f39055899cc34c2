//! The one way the test stand-ins serve HTTP: an axum [`Router`] on 127.0.0.1, on a thread of
//! its own with its own tokio runtime. hyper does the HTTP (keep-alive, chunked bodies,
//! `Expect: 100-continue`), so the stand-ins only say what to answer.
//!
//! Its own runtime makes a server usable from `#[test]` functions and from inside any other
//! runtime alike: a server started in a `#[tokio::test]` (one thread) still answers while that
//! test blocks or awaits. Dropping a [`Server`] stops it: no new connections, idle keep-alive
//! connections closed, requests in flight given [`GRACE`] to finish; whatever is still open
//! then is closed unanswered. When the drop returns, every connection is closed.

use axum::Router;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// How long dropping a server waits for requests in flight before closing their connections.
pub const GRACE: Duration = Duration::from_secs(5);

/// A running HTTP server on 127.0.0.1; stops on drop.
pub struct Server {
    port: u16,
    /// Tells the server thread to stop, with how long in-flight requests may still take.
    stop: watch::Sender<Option<Duration>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `router` on a free port of 127.0.0.1; `name` names the thread (in panics and
    /// debuggers). Handlers can extract `ConnectInfo<SocketAddr>`. Panics when no port can be
    /// bound, as a fixture that cannot start should.
    pub fn start(name: &str, router: Router) -> Server {
        Server::start_with(name, |_| router)
    }

    /// [`Server::start`] for a router that needs its own port (to write absolute URLs).
    pub fn start_with(name: &str, router: impl FnOnce(u16) -> Router) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding a loopback port for {name}: {e}"));
        let port = listener.local_addr().expect("the bound address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener, as tokio wants");
        let router = router(port);
        let (stop, stopping) = watch::channel(None);
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{port}"))
            .spawn(move || run(listener, router, stopping))
            .unwrap_or_else(|e| panic!("starting the thread of {name}: {e}"));
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server, giving requests in flight `grace` to finish, and returns once every
    /// connection is closed. A second call does nothing. `Duration::ZERO` closes requests in
    /// flight at once, unanswered: what a server whose requests hang on purpose wants.
    pub fn shutdown(&mut self, grace: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stop.send_replace(Some(grace));
        // A panic on the server thread (a failed handler assertion, say) was already printed.
        let _ = thread.join();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown(GRACE);
    }
}

/// The server thread: serves until told to stop, drains for the grace it was given, then
/// drops the runtime, which closes every connection still open.
fn run(
    listener: std::net::TcpListener,
    router: Router,
    mut stopping: watch::Receiver<Option<Duration>>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for a test server");
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::from_std(listener).expect("the listener, registered");
        let mut signal = stopping.clone();
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            // An error means the `Server` is gone: stop as well.
            let _ = signal.wait_for(Option::is_some).await;
        });
        let deadline = async move {
            let grace = match stopping.wait_for(Option::is_some).await {
                Ok(grace) => (*grace).unwrap_or_default(),
                Err(_) => Duration::ZERO,
            };
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            // Serving ends only after the signal, once every connection has closed.
            _ = serve => {}
            _ = deadline => {}
        }
    });
    // Connection tasks still running are dropped here, closing their sockets; a handler's
    // blocking work (a CGI process, a git2 merge) gets a moment to return.
    runtime.shutdown_timeout(Duration::from_secs(1));
}
