//! The minimal LNet layer above the engine (being written).
