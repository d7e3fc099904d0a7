//! The socklnd protocol engine, sans-IO (being written).
