//! The datagram socket the driver needs; tokio's `UdpSocket` is one, and a
//! test can wrap it (e.g. to record every destination).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// An unconnected UDP socket.
pub trait UdpIo: Send + Sync + 'static {
    /// The bound address (concrete, not a wildcard).
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// Sends one datagram.
    fn send_to(&self, buf: &[u8], to: SocketAddr)
    -> impl Future<Output = io::Result<usize>> + Send;
    /// Receives one datagram.
    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send;
}

impl UdpIo for tokio::net::UdpSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::UdpSocket::local_addr(self)
    }

    fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send {
        tokio::net::UdpSocket::send_to(self, buf, to)
    }

    fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        tokio::net::UdpSocket::recv_from(self, buf)
    }
}
