//! What the test HTTP servers (alert receiver, load tester, GitHub stand-in) share: an accept
//! loop that serves each connection on its own thread until the server is stopped.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// Serves each connection of `listener` with `serve` on its own thread, until `stopped` says
/// so (checked at each connection: [`wake`] makes one after setting the flag).
pub fn accept<S: Send + Sync + 'static>(
    listener: TcpListener,
    shared: Arc<S>,
    stopped: fn(&S) -> bool,
    serve: fn(TcpStream, &S) -> std::io::Result<()>,
) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stopped(&shared) {
                break;
            }
            let Ok(stream) = conn else { continue };
            let s = shared.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &s);
            });
        }
    });
}

/// Wakes the accept loop on `port` so that it sees its stop flag.
pub fn wake(port: u16) {
    let _ = TcpStream::connect(("127.0.0.1", port));
}
