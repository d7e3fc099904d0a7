//! The runtime as a [`NalControl`]: the socklnd control commands of `lctl`/`ptlctl`, decoded
//! from their ioctl encodings by the same [`crate::ioctl::dispatch`] the Windows driver runs on
//! its `IRP_MJ_DEVICE_CONTROL` buffers. The control socket's `ioctl` request carries those
//! bytes; `tdinal peer_list`, `conn_list`, `add_peer`, `del_peer` and `disconnect` use it.

use std::time::Duration;

use super::node::{sorted_conns, sorted_peers, ConnectFailure, NodeHandle};
use crate::engine::Error;
use crate::ioctl::{AcceptPolicy, ConnInfo, CtlError, NalControl, PeerInfo};
use crate::wire::{ConnType, Net, Nid, ProcessId};

/// How long `CONNECT_PEER` waits for the connections.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// A [`NalControl`] over a running node.
pub struct RuntimeNal<'a> {
    pub node: &'a NodeHandle,
}

fn ctl_error(f: &ConnectFailure) -> CtlError {
    match f.reason {
        Some(Error::Io(111)) | Some(Error::Refused(_)) => CtlError::ConnectionRefused,
        Some(Error::Io(113)) | Some(Error::Io(101)) | Some(Error::HostUnreachable) => {
            CtlError::Unreachable
        }
        Some(Error::Io(98)) => CtlError::AddressInUse,
        Some(Error::Io(110)) | Some(Error::Timeout(_)) | None => CtlError::TimedOut,
        Some(e) => CtlError::Failed { errno: e.errno() },
    }
}

impl NalControl for RuntimeNal<'_> {
    fn serves_net(&self, net: Net) -> bool {
        net == self.node.nid().net()
    }

    fn start_daemon(
        &mut self,
        port: u16,
        accept: AcceptPolicy,
        _backlog: u32,
    ) -> Result<(), CtlError> {
        // The user-space daemon's acceptor starts with the node (`--port`, `--accept`).
        let t = &self.node.config().tunables;
        let same = port == t.accept_port && accept.name() == t.accept.name();
        Err(if same {
            CtlError::InvalidState
        } else {
            CtlError::NotSupported
        })
    }

    fn connect_peer(
        &mut self,
        nid: Nid,
        ip: u32,
        port: u16,
        ctype: Option<ConnType>,
    ) -> Result<(), CtlError> {
        if ctype.is_some() {
            // One connection of a chosen type (ptlctl `connect … [iIOC]`): the engine always
            // brings up its usual typed set.
            return Err(CtlError::NotSupported);
        }
        self.node
            .connect(
                ProcessId::lustre(nid),
                std::net::Ipv4Addr::from(ip),
                port,
                CONNECT_WAIT,
            )
            .map(|_| ())
            .map_err(|f| ctl_error(&f))
    }

    fn add_peer(&mut self, nid: Nid, ip: u32, port: u16) -> Result<(), CtlError> {
        self.node
            .add_peer(ProcessId::lustre(nid), std::net::Ipv4Addr::from(ip), port);
        Ok(())
    }

    fn del_peer(
        &mut self,
        nid: Option<Nid>,
        ip: Option<u32>,
        _single_share: bool,
    ) -> Result<(), CtlError> {
        let matches = self
            .node
            .peers()
            .iter()
            .any(|p| nid.is_none_or(|n| n == p.id.nid) && ip.is_none_or(|ip| ip == p.ip));
        if !matches {
            return Err(CtlError::NotFound);
        }
        self.node.del_peer(nid, ip.map(std::net::Ipv4Addr::from));
        Ok(())
    }

    fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError> {
        let peers = sorted_peers(self.node.peers());
        let p = peers.get(index as usize).ok_or(CtlError::NoMoreEntries)?;
        Ok(PeerInfo {
            nid: p.id.nid,
            pid: p.id.pid,
            my_ip: u32::from(self.node.local_ip()),
            ip: p.ip,
            port: p.port,
            conn_count: p.conn_count,
            share_count: p.share_count,
        })
    }

    fn get_conn(&self, index: u32) -> Result<ConnInfo, CtlError> {
        let conns = sorted_conns(self.node.conns());
        let c = conns.get(index as usize).ok_or(CtlError::NoMoreEntries)?;
        let m = c.meta;
        Ok(ConnInfo {
            nid: c.info.peer.nid,
            pid: c.info.peer.pid,
            my_ip: c.info.addrs.local_ip,
            ip: c.info.addrs.peer_ip,
            port: c.info.addrs.peer_port,
            conn_type: c.info.ctype,
            scheduler: m.map(|m| m.sched as u32).unwrap_or(0),
            tx_buf: m.map(|m| m.txbuf).unwrap_or(0),
            rx_buf: m.map(|m| m.rxbuf).unwrap_or(0),
            nagle: m.is_some_and(|m| m.nagle),
        })
    }

    fn close_connection(&mut self, nid: Option<Nid>, ip: Option<u32>) -> Result<(), CtlError> {
        let n = self.node.disconnect(nid, ip.map(std::net::Ipv4Addr::from));
        if n == 0 && (nid.is_some() || ip.is_some()) {
            return Err(CtlError::NotFound);
        }
        Ok(())
    }

    fn register_my_nid(&mut self, nid: Nid) -> Result<(), CtlError> {
        if nid == self.node.nid() {
            Ok(())
        } else {
            Err(CtlError::InvalidArgument)
        }
    }

    fn push_connection(&mut self, _nid: Option<Nid>) -> Result<(), CtlError> {
        // Nothing is held back: sockets run with TCP_NODELAY (unless `nagle`) and every
        // connection with bytes queued has a send in flight.
        Ok(())
    }

    fn get_ni(&self, index: u32) -> Result<Nid, CtlError> {
        if index == 0 {
            Ok(self.node.nid())
        } else {
            Err(CtlError::NoMoreEntries)
        }
    }
}
