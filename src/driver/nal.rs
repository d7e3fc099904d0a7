//! The kernel runtime as the control device's NAL: [`DriverNal`] owns a running
//! [`TdiRuntime`] (TDI transport, scheduler and acceptor threads, engine, LNet layer) and maps
//! the ptlctl/lctl commands onto the engine through [`TdiRuntime::with`] (PASSIVE_LEVEL: every
//! caller is the `IRP_MJ_DEVICE_CONTROL` dispatch routine under the control lock).
//!
//! It is started by `NAL_CMD_START_DAEMON` ([`super::control::Control`] builds the
//! [`TdiConfig`] from the registry tunables, the configured local address and the command, see
//! [`start`]) and stopped by `DriverUnload` ([`KernelRuntime::stop`]: acceptor stopped,
//! connections closed, open LNet operations failed, threads joined, everything freed).
//!
//! Semantics, as socklnd's `ksocknal_ctl`:
//! - `CONNECT_PEER` adds a persistent route and launches the connections; it returns at once
//!   (the connections come up asynchronously, `GET_CONN` lists them once established). A chosen
//!   connection type is not supported (the engine always brings up its usual typed set).
//! - `DEL_PEER`/`CLOSE_CONNECTION` answer `NotFound` when a filter matched nothing.
//! - `REGISTER_MYNID` accepts only this NI's NID; `PUSH_CONNECTION` is a no-op (every
//!   connection with bytes queued has a send in flight; TCP options are not issued yet).
//! - `GET_CONN`'s `scheduler` is 0: the engine's listing does not carry the TDI scheduler
//!   index. Buffer sizes and Nagle are the tunables' (the transport's defaults are not queried).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::control::KernelRuntime;
use super::nal_if::{NalInterfaceProvider, TDINAL_LNET_CALLBACKS, TDINAL_NAL_INTERFACE};
use crate::engine::tunables::Tunables;
use crate::engine::LocalNi;
use crate::ioctl::{AcceptPolicy, ConnInfo, CtlError, NalControl, PeerInfo};
use crate::kernel::{NTSTATUS, STATUS_DEVICE_NOT_READY};
use crate::tdi::{TdiConfig, TdiRuntime};
use crate::wire::nid::LNET_PID_LUSTRE;
use crate::wire::{ConnType, Net, Nid, ProcessId};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

/// What `NAL_CMD_START_DAEMON` starts the runtime with: the registry tunables, the local
/// interface, and the command's port, accept policy and backlog.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub tunables: Tunables,
    /// The LNet network of the NI (`tcp` = `Net::TCP0`).
    pub net: Net,
    /// Local IPv4 address (host order): the NID's address, the listener's and every active
    /// connection's source address.
    pub local_ip: u32,
    pub port: u16,
    pub accept: AcceptPolicy,
    pub backlog: u32,
    /// Scheduler threads (0: one per active processor).
    pub schedulers: u32,
}

/// Starts a runtime for `Control` (the function `Control::set_starter` takes).
pub type Starter = fn(&StartRequest) -> Result<Box<dyn KernelRuntime>, CtlError>;

/// The engine's accept policy for the command's.
fn accept_policy(a: AcceptPolicy) -> crate::engine::AcceptPolicy {
    match a {
        AcceptPolicy::Secure => crate::engine::AcceptPolicy::Secure,
        AcceptPolicy::All => crate::engine::AcceptPolicy::All,
        AcceptPolicy::None => crate::engine::AcceptPolicy::None,
    }
}

/// The TDI configuration for a start request.
pub fn tdi_config(req: &StartRequest, incarnation: u64) -> TdiConfig {
    let mut tunables = req.tunables.clone();
    tunables.accept_port = req.port;
    tunables.accept = accept_policy(req.accept);
    tunables.accept_backlog = req.backlog;
    TdiConfig {
        ni: LocalNi {
            nid: Nid::new(req.net, req.local_ip),
            pid: LNET_PID_LUSTRE,
            incarnation,
        },
        // The TDI_CONNECT timeout: socklnd's connection timeout is sock_timeout.
        connect_timeout_ms: tunables.sock_timeout.saturating_mul(1000).max(1000),
        disconnect_timeout_ms: 10_000,
        tunables,
        local_ip: req.local_ip,
        listen_port: Some(req.port),
        backlog: req.backlog.clamp(1, 1024),
        schedulers: req.schedulers,
    }
}

/// The [`Starter`] of the driver: starts a [`TdiRuntime`] (PASSIVE_LEVEL). The incarnation is
/// the performance counter in milliseconds at start (it grows across restarts, as socklnd's
/// `ktime_get_ns` at NI start).
pub fn start(req: &StartRequest) -> Result<Box<dyn KernelRuntime>, CtlError> {
    if req.local_ip == 0 {
        // No local address configured: there is no NID to start with.
        return Err(CtlError::InvalidState);
    }
    let incarnation = crate::tdi::obj::now_ms().max(1);
    let cfg = tdi_config(req, incarnation);
    let ni = cfg.ni;
    let local_ip = cfg.local_ip;
    let tunables = cfg.tunables.clone();
    let rt = TdiRuntime::start(cfg).map_err(ctl_error_of_status)?;
    Ok(Box::new(DriverNal {
        rt: Some(rt),
        ni,
        local_ip,
        tunables,
    }))
}

/// A start failure as the ioctl reports it.
fn ctl_error_of_status(st: NTSTATUS) -> CtlError {
    use crate::kernel::{
        STATUS_ADDRESS_ALREADY_EXISTS, STATUS_INSUFFICIENT_RESOURCES, STATUS_SHARING_VIOLATION,
    };
    if st == STATUS_ADDRESS_ALREADY_EXISTS || st == STATUS_SHARING_VIOLATION {
        CtlError::AddressInUse
    } else if st == STATUS_INSUFFICIENT_RESOURCES {
        CtlError::NoMemory
    } else {
        // NTSTATUS facility codes have no errno; EIO as lctl shows it.
        CtlError::Failed { errno: 5 }
    }
}

/// The running kernel NAL.
pub struct DriverNal {
    /// `None` only after [`KernelRuntime::stop`] took it.
    rt: Option<TdiRuntime>,
    ni: LocalNi,
    local_ip: u32,
    tunables: Tunables,
}

impl DriverNal {
    fn rt(&self) -> Result<&TdiRuntime, CtlError> {
        self.rt.as_ref().ok_or(CtlError::InvalidState)
    }

    /// The runtime itself (tests drive LNet through [`TdiRuntime::with`] and poll its events).
    pub fn runtime(&self) -> Option<&TdiRuntime> {
        self.rt.as_ref()
    }

    /// The NI this NAL serves.
    pub fn ni(&self) -> LocalNi {
        self.ni
    }
}

fn conn_rank(t: ConnType) -> u8 {
    match t {
        ConnType::Any => 0,
        ConnType::Control => 1,
        ConnType::BulkIn => 2,
        ConnType::BulkOut => 3,
        ConnType::None => 4,
    }
}

impl NalControl for DriverNal {
    fn serves_net(&self, net: Net) -> bool {
        net == self.ni.nid.net()
    }

    fn start_daemon(&mut self, _: u16, _: AcceptPolicy, _: u32) -> Result<(), CtlError> {
        // Already started (Control answers a second START_DAEMON itself; kept for direct use).
        Err(CtlError::InvalidState)
    }

    fn connect_peer(
        &mut self,
        nid: Nid,
        ip: u32,
        port: u16,
        ctype: Option<ConnType>,
    ) -> Result<(), CtlError> {
        if ctype.is_some() {
            return Err(CtlError::NotSupported);
        }
        if nid == self.ni.nid {
            return Err(CtlError::InvalidArgument);
        }
        self.rt()?
            .with(|_, e, now| e.connect_peer(now, ProcessId::lustre(nid), ip, port));
        Ok(())
    }

    fn add_peer(&mut self, nid: Nid, ip: u32, port: u16) -> Result<(), CtlError> {
        if nid == self.ni.nid {
            return Err(CtlError::InvalidArgument);
        }
        self.rt()?
            .with(|_, e, now| e.add_peer(now, ProcessId::lustre(nid), ip, port));
        Ok(())
    }

    fn del_peer(
        &mut self,
        nid: Option<Nid>,
        ip: Option<u32>,
        _single_share: bool,
    ) -> Result<(), CtlError> {
        self.rt()?.with(|_, e, now| {
            let matches = e
                .peers()
                .iter()
                .any(|p| nid.is_none_or(|n| n == p.id.nid) && ip.is_none_or(|ip| ip == p.ip));
            if !matches {
                return Err(CtlError::NotFound);
            }
            e.del_peer(now, nid, ip);
            Ok(())
        })
    }

    fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError> {
        let mut peers = self.rt()?.with(|_, e, _| e.peers());
        peers.sort_by_key(|p| (p.id, p.ip, p.port));
        let p = peers
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .ok_or(CtlError::NoMoreEntries)?;
        Ok(PeerInfo {
            nid: p.id.nid,
            pid: p.id.pid,
            my_ip: self.local_ip,
            ip: p.ip,
            port: p.port,
            conn_count: p.conn_count,
            share_count: p.share_count,
        })
    }

    fn get_conn(&self, index: u32) -> Result<ConnInfo, CtlError> {
        let mut conns: Vec<crate::engine::ConnInfo> = self.rt()?.with(|_, e, _| e.conns());
        conns.sort_by_key(|c| (c.peer, c.addrs.peer_ip, conn_rank(c.ctype), c.conn));
        let c = conns
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .ok_or(CtlError::NoMoreEntries)?;
        Ok(ConnInfo {
            nid: c.peer.nid,
            pid: c.peer.pid,
            my_ip: c.addrs.local_ip,
            ip: c.addrs.peer_ip,
            port: c.addrs.peer_port,
            conn_type: c.ctype,
            scheduler: 0,
            tx_buf: self.tunables.tx_buffer_size,
            rx_buf: self.tunables.rx_buffer_size,
            nagle: self.tunables.nagle,
        })
    }

    fn close_connection(&mut self, nid: Option<Nid>, ip: Option<u32>) -> Result<(), CtlError> {
        let n = self.rt()?.with(|_, e, now| e.close_conns(now, nid, ip));
        if n == 0 && (nid.is_some() || ip.is_some()) {
            return Err(CtlError::NotFound);
        }
        Ok(())
    }

    fn register_my_nid(&mut self, nid: Nid) -> Result<(), CtlError> {
        if nid == self.ni.nid {
            Ok(())
        } else {
            Err(CtlError::InvalidArgument)
        }
    }

    fn push_connection(&mut self, _nid: Option<Nid>) -> Result<(), CtlError> {
        self.rt()?;
        Ok(())
    }

    fn get_ni(&self, index: u32) -> Result<Nid, CtlError> {
        if index == 0 {
            Ok(self.ni.nid)
        } else {
            Err(CtlError::NoMoreEntries)
        }
    }
}

impl NalInterfaceProvider for DriverNal {
    /// Makes the kernel LNet the engine's upper layer (`super::nal_bind`): its callbacks are
    /// called by scheduler 0, its entry points queue work for it. `STATUS_DEVICE_BUSY` while
    /// another LNet is bound (until its last `InterfaceDereference`).
    fn bind_lnet(
        &mut self,
        callbacks: &TDINAL_LNET_CALLBACKS,
    ) -> Result<TDINAL_NAL_INTERFACE, NTSTATUS> {
        let rt = self.rt.as_ref().ok_or(STATUS_DEVICE_NOT_READY)?;
        super::nal_bind::bind(rt, callbacks)
    }
}

impl KernelRuntime for DriverNal {
    /// `TdiRuntime::stop` (it joins every thread and frees every object before returning). It
    /// reports nothing yet, so this is `Ok` once stopped; the engine's gauges are checked by the
    /// caller before (`tests/driver_runtime.rs`) and the emulation's leak counters after.
    fn stop(mut self: Box<Self>) -> Result<(), String> {
        if let Some(rt) = self.rt.take() {
            rt.stop();
        }
        Ok(())
    }

    fn as_driver_nal(&self) -> Option<&DriverNal> {
        Some(self)
    }
}
