//! zus: the user-mode server.
