//! Counters: what the engine did, and what it holds. The "open" counters return to zero when
//! everything has been finalized and released; integration tests assert that.

/// Engine counters. Gauges (`*_open`, `conns_open`, `peers`, `zc_waiting`) go up and down;
/// the rest only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns_open: u64,
    pub peers: u64,
    pub rx_msgs_open: u64,
    pub zc_waiting: u64,
    pub tx_msgs_started: u64,
    pub tx_msgs_done: u64,
    pub tx_msgs_failed: u64,
    pub rx_msgs: u64,
    pub rx_noops: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Payload bytes the engine copied into sinks (the runtime's direct reads are not copies by us).
    pub rx_payload_copied: u64,
    /// Payload bytes that reached sinks, however they got there (`rx_commit` after a read
    /// straight into the sink, or copied by `handle_rx`).
    pub rx_payload_bytes: u64,
    pub zc_requests: u64,
    pub zc_acks_received: u64,
    /// ACKs that matched a zero-copy send already failed by its connection's close (ignored).
    pub zc_acks_stale: u64,
    /// Parked ZC-ACKs dropped because the connection their request came on closed.
    pub zc_acks_dropped: u64,
    pub zc_acks_piggybacked: u64,
    pub zc_acks_noop: u64,
    pub keepalives_sent: u64,
    pub handshakes_ok: u64,
    pub handshakes_refused: u64,
    pub fallbacks: u64,
    pub fallback_replies: u64,
    pub races_lost_by_peer: u64,
    pub incarnation_changes: u64,
    pub refused_insecure: u64,
}

impl Stats {
    /// Messages handed to `send` and not yet finalized.
    pub fn tx_msgs_open(&self) -> u64 {
        self.tx_msgs_started.wrapping_sub(self.tx_msgs_done)
    }
}
