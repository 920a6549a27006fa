//! A `tokio_util::codec` decoder and encoder, for `Framed` streams and sinks.

use bytes::{Buf, BytesMut};
use tej_core::{Assembler, DecodeError, EncodeError, Frame, Limits};
use tokio_util::codec::{Decoder, Encoder};

/// Why the codec failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes received are not valid TEJ, or break a limit.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The frame cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whole in-memory [`Frame`]s over any `AsyncRead + AsyncWrite`, under
/// [`Limits`].
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use tej_core::Frame;
/// use tej_tokio::TejCodec;
/// use tokio_util::codec::Framed;
///
/// # async fn demo() -> Result<(), tej_tokio::CodecError> {
/// let stream = tokio::net::TcpStream::connect("127.0.0.1:4000").await?;
/// let mut framed = Framed::new(stream, TejCodec::default());
/// framed.send(Frame::message("Hello")).await?;
/// framed.feed(Frame::message("batched")).await?;
/// framed.flush().await?;
/// while let Some(frame) = framed.next().await {
///     println!("{:?}", frame?.message);
/// }
/// # Ok(())
/// # }
/// ```
///
/// Files on disk cannot be encoded here: use a [`Client`](crate::Client)
/// to stream them.
#[derive(Debug)]
pub struct TejCodec {
    assembler: Assembler,
}

impl TejCodec {
    /// A codec enforcing `limits` on what it decodes.
    pub fn new(limits: Limits) -> TejCodec {
        TejCodec {
            assembler: Assembler::new(limits),
        }
    }
}

impl Default for TejCodec {
    fn default() -> Self {
        TejCodec::new(Limits::default())
    }
}

impl Decoder for TejCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let assembled = self.assembler.decode(src)?;
        src.advance(assembled.consumed);
        Ok(assembled.frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        self.assembler.finish()?;
        Ok(None)
    }
}

/// The one encoder, so that `SinkExt::send` and `SinkExt::flush` need no
/// turbofish on a `Framed<_, TejCodec>`. To send a frame you keep, send a
/// clone: its bodies are [`Bytes`](bytes::Bytes), cloned without copying.
impl Encoder<Frame> for TejCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.reserve(usize::try_from(frame.encoded_len()).unwrap_or(0));
        frame.encode_to(dst)?;
        Ok(())
    }
}
