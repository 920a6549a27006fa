//! Every adapter re-exports the same items from tej-core (and tej-net's
//! `ShutdownHandle`) at its root: one test per adapter, written once.

macro_rules! same_reexports {
    ($($adapter:ident),*) => {$(
        mod $adapter {
            #[allow(unused_imports)]
            use $adapter::{
                tej_core, BufferedSender, Connection, DecodeError, DisconnectReason, EncodeError,
                Field, File, FileBody, FileTarget, Frame, FrameBuilder, FrameTimeout, Handler,
                LimitKind, Limits, NotWritten, SendError, SendFuture, SendProgress, Sender,
                Session, SessionConfig, ShutdownHandle, Status, Written,
            };

            #[test]
            fn the_core_items_are_the_core_s() {
                fn same<T>(_: fn(T) -> T) {}
                same::<$adapter::DecodeError>(std::convert::identity::<tej_core::DecodeError>);
                same::<$adapter::LimitKind>(std::convert::identity::<tej_core::LimitKind>);
                same::<$adapter::Field>(std::convert::identity::<tej_core::Field>);
                same::<$adapter::Session<Box<dyn Handler>>>(
                    std::convert::identity::<tej_core::Session<Box<dyn Handler>>>,
                );
                same::<$adapter::DisconnectReason>(
                    std::convert::identity::<tej_core::DisconnectReason>,
                );
                same::<$adapter::SendProgress>(std::convert::identity::<tej_core::SendProgress>);
                same::<$adapter::ShutdownHandle>(
                    std::convert::identity::<tej_net::ShutdownHandle>,
                );
                same::<$adapter::Limits>(std::convert::identity::<tej_core::Limits>);
                let reason: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(DisconnectReason::PeerClosed);
                assert_eq!(reason.to_string(), "peer closed the connection");
            }
        }
    )*};
}

same_reexports!(tej_tokio, tej_async_std, tej_mio);
