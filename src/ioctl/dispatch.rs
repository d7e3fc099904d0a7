//! The dispatcher: decoded commands → the NAL's control operations → replies.
//!
//! The driver's `IRP_MJ_DEVICE_CONTROL` handler calls [`dispatch_in_place`] on the
//! METHOD_BUFFERED system buffer (input and output share it) and completes the IRP with
//! `Ok(n)` → `STATUS_SUCCESS`, `Information = n`, or `Err(e)` → `e.to_ntstatus()`,
//! `Information = 0`. The user-space runtime calls [`dispatch`] (or [`execute`] with a typed
//! [`Command`]) and returns `-e.to_errno()`.

use crate::wire::{ConnType, Net, Nid};

use super::bytes::copy_prefix;
use super::command::{decode_request, AcceptPolicy, Command, Request, DEFAULT_ACCEPT_BACKLOG};
use super::error::{CtlError, IoctlError};
use super::reply::{patch_reply, ConnInfo, InterfaceInfo, PeerInfo, Reply, ReplyKind};

/// The control operations of a NAL (implemented by the engine; mocked in tests).
///
/// Arguments are already validated: NIDs are specific socklnd NIDs unless `Option` (where
/// `None` = all), IPs are unicast, ports non-zero. List getters return
/// [`CtlError::NoMoreEntries`] for an index past the end.
pub trait NalControl {
    /// Whether this NAL serves LNet network `net` (`ioc_net` of an LNet-era request; always a
    /// socklnd network by then). Requests for other networks fail with `NoSuchNet`.
    fn serves_net(&self, net: Net) -> bool;
    /// Starts the acceptor on `port` with `accept` policy and `backlog` pending connections;
    /// [`AcceptPolicy::None`] stops it (the port is still the one to connect to).
    fn start_daemon(
        &mut self,
        port: u16,
        accept: AcceptPolicy,
        backlog: u32,
    ) -> Result<(), CtlError>;
    /// Connects to `nid` at `ip:port`; `ctype` `None` = the NAL's usual set of connections.
    fn connect_peer(
        &mut self,
        nid: Nid,
        ip: u32,
        port: u16,
        ctype: Option<ConnType>,
    ) -> Result<(), CtlError>;
    fn add_peer(&mut self, nid: Nid, ip: u32, port: u16) -> Result<(), CtlError>;
    fn del_peer(
        &mut self,
        nid: Option<Nid>,
        ip: Option<u32>,
        single_share: bool,
    ) -> Result<(), CtlError>;
    fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError>;
    fn get_conn(&self, index: u32) -> Result<ConnInfo, CtlError>;
    fn close_connection(&mut self, nid: Option<Nid>, ip: Option<u32>) -> Result<(), CtlError>;
    fn register_my_nid(&mut self, nid: Nid) -> Result<(), CtlError>;
    fn push_connection(&mut self, nid: Option<Nid>) -> Result<(), CtlError>;
    /// The `index`th local NID (`lctl list_nids`).
    fn get_ni(&self, index: u32) -> Result<Nid, CtlError>;
    /// Interface bonding (P14/B18 only). Default: not supported.
    fn add_interface(&mut self, ip: u32, netmask: u32) -> Result<(), CtlError> {
        let _ = (ip, netmask);
        Err(CtlError::NotSupported)
    }
    /// Default: not supported.
    fn del_interface(&mut self, ip: Option<u32>) -> Result<(), CtlError> {
        let _ = ip;
        Err(CtlError::NotSupported)
    }
    /// Default: not supported.
    fn get_interface(&self, index: u32) -> Result<InterfaceInfo, CtlError> {
        let _ = index;
        Err(CtlError::NotSupported)
    }
}

/// Runs one typed command against the NAL.
pub fn execute<C: NalControl + ?Sized>(ctl: &mut C, cmd: &Command) -> Result<Reply, IoctlError> {
    let none = |()| Reply::None;
    let r = match *cmd {
        Command::StartDaemon {
            port,
            accept,
            backlog,
        } => ctl
            .start_daemon(port, accept, backlog.unwrap_or(DEFAULT_ACCEPT_BACKLOG))
            .map(none),
        Command::ConnectPeer {
            nid,
            ip,
            port,
            ctype,
        } => ctl.connect_peer(nid, ip, port, ctype).map(none),
        Command::AddPeer { nid, ip, port } => ctl.add_peer(nid, ip, port).map(none),
        Command::DelPeer {
            nid,
            ip,
            single_share,
        } => ctl.del_peer(nid, ip, single_share).map(none),
        Command::GetPeer { index } => ctl.get_peer(index).map(Reply::Peer),
        Command::GetConn { index } => ctl.get_conn(index).map(Reply::Conn),
        Command::CloseConnection { nid, ip } => ctl.close_connection(nid, ip).map(none),
        Command::RegisterMyNid { nid } => ctl.register_my_nid(nid).map(none),
        Command::PushConnection { nid } => ctl.push_connection(nid).map(none),
        Command::AddInterface { ip, netmask } => ctl.add_interface(ip, netmask).map(none),
        Command::DelInterface { ip } => ctl.del_interface(ip).map(none),
        Command::GetInterface { index } => ctl.get_interface(index).map(Reply::Interface),
        Command::GetNi { index } => ctl.get_ni(index).map(Reply::Ni),
    };
    r.map_err(IoctlError::from)
}

fn check_net<C: NalControl + ?Sized>(ctl: &C, req: &Request) -> Result<(), IoctlError> {
    match req.net {
        Some(net) if !ctl.serves_net(net) => Err(IoctlError::NoSuchNet { net: net.0 }),
        _ => Ok(()),
    }
}

/// Decodes the request in `input`, runs it, and writes the reply (if the command has one) into
/// `output` in the request's layout. Returns the number of output bytes (0 for commands without
/// a reply). For list commands the output buffer must hold the whole request (224 bytes
/// Portals-era, `ioc_len` LNet-era); that is checked before the NAL is called.
pub fn dispatch(
    ctl: &mut (impl NalControl + ?Sized),
    code: u32,
    input: &[u8],
    output: &mut [u8],
) -> Result<usize, IoctlError> {
    let req = decode_request(code, input)?;
    check_net(ctl, &req)?;
    let has_reply = req.command.reply_kind() != ReplyKind::None;
    if has_reply && output.len() < input.len() {
        return Err(IoctlError::OutputTooSmall {
            need: input.len(),
            have: output.len(),
        });
    }
    let reply = execute(ctl, &req.command)?;
    if !has_reply {
        return Ok(0);
    }
    copy_prefix(output, input)?;
    patch_reply(
        req.era,
        output.get_mut(..input.len()).unwrap_or_default(),
        &reply,
    )?;
    Ok(input.len())
}

/// [`dispatch`] on a METHOD_BUFFERED system buffer: `buf` holds the request in its first
/// `input_len` bytes and receives the reply in its first `output_len` bytes
/// (`buf.len()` = max of the two, as the I/O manager allocates it). The request is fully
/// decoded into a [`Command`] before anything is written, so sharing the buffer is safe.
pub fn dispatch_in_place(
    ctl: &mut (impl NalControl + ?Sized),
    code: u32,
    buf: &mut [u8],
    input_len: usize,
    output_len: usize,
) -> Result<usize, IoctlError> {
    let input = buf.get(..input_len).ok_or(IoctlError::ShortInput {
        need: input_len,
        have: buf.len(),
    })?;
    let req = decode_request(code, input)?;
    check_net(ctl, &req)?;
    let has_reply = req.command.reply_kind() != ReplyKind::None;
    let output_len = output_len.min(buf.len());
    if has_reply && output_len < input_len {
        return Err(IoctlError::OutputTooSmall {
            need: input_len,
            have: output_len,
        });
    }
    let reply = execute(ctl, &req.command)?;
    if !has_reply {
        return Ok(0);
    }
    // The request is already in place: only the output fields change.
    patch_reply(
        req.era,
        buf.get_mut(..input_len).unwrap_or_default(),
        &reply,
    )?;
    Ok(input_len)
}
