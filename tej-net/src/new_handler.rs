//! The handler factory a server takes: a closure of no argument, or one
//! that reads the new connection's [`ConnectionInfo`].

use tej_core::{ConnectionInfo, Handler};

/// Makes the [`Handler`] of each new connection: implemented for
/// `FnMut() -> H` and for `FnMut(&ConnectionInfo) -> H`, so both
/// `|| handler` and `|info: &ConnectionInfo| handler` can be given to a
/// server (the type of `info` must be written). `Marker` only tells the
/// two closure shapes apart; it is inferred.
///
/// ```
/// use tej_core::{ConnectionInfo, Handler};
/// use tej_net::NewHandler;
///
/// struct Greeter(Option<std::net::SocketAddr>);
/// impl Handler for Greeter {}
///
/// fn takes<M>(mut factory: impl NewHandler<M>) -> Option<std::net::SocketAddr> {
///     let info = ConnectionInfo::default();
///     let _ = factory.new_handler(&info);
///     None
/// }
/// takes(|| Greeter(None));
/// takes(|info: &ConnectionInfo| Greeter(info.peer));
/// ```
pub trait NewHandler<Marker> {
    /// The handler it makes.
    type Handler: Handler;

    /// The handler for the connection `info` describes.
    fn new_handler(&mut self, info: &ConnectionInfo) -> Self::Handler;
}

impl<F, H> NewHandler<()> for F
where
    F: FnMut() -> H,
    H: Handler,
{
    type Handler = H;

    fn new_handler(&mut self, _info: &ConnectionInfo) -> H {
        self()
    }
}

impl<F, H> NewHandler<(ConnectionInfo,)> for F
where
    F: FnMut(&ConnectionInfo) -> H,
    H: Handler,
{
    type Handler = H;

    fn new_handler(&mut self, info: &ConnectionInfo) -> H {
        self(info)
    }
}
