//! Every adapter re-exports the same items from tej-core at its root.

#[allow(unused_imports)]
use tej_tokio::{
    tej_core, BufferedSender, Connection, DecodeError, DisconnectReason, EncodeError, Field, File,
    FileBody, FileTarget, Frame, FrameBuilder, FrameTimeout, Handler, LimitKind, Limits,
    NotWritten, SendError, SendFuture, SendProgress, Sender, Session, SessionConfig,
    ShutdownHandle, Status, Written,
};

#[test]
fn the_core_items_are_the_core_s() {
    fn same<T>(_: fn(T) -> T) {}
    same::<tej_tokio::DecodeError>(std::convert::identity::<tej_core::DecodeError>);
    same::<tej_tokio::LimitKind>(std::convert::identity::<tej_core::LimitKind>);
    same::<tej_tokio::Field>(std::convert::identity::<tej_core::Field>);
    same::<tej_tokio::Session<Box<dyn Handler>>>(
        std::convert::identity::<tej_core::Session<Box<dyn Handler>>>,
    );
    same::<tej_tokio::DisconnectReason>(std::convert::identity::<tej_core::DisconnectReason>);
    same::<tej_tokio::SendProgress>(std::convert::identity::<tej_core::SendProgress>);
    same::<tej_tokio::ShutdownHandle>(std::convert::identity::<tej_net::ShutdownHandle>);
    same::<tej_tokio::Limits>(std::convert::identity::<tej_core::Limits>);
    let reason: Box<dyn std::error::Error + Send + Sync> = Box::new(DisconnectReason::PeerClosed);
    assert_eq!(reason.to_string(), "peer closed the connection");
}
