//! The user-space runtime over std sockets and threads (being written).
