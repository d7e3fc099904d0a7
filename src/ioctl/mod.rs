//! The control interface (ptlctl/lctl ioctls), decoded and validated (being written).
