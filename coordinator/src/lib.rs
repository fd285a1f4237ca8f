//! The Weft coordinator: ractor actors holding each running workflow's state machine,
//! dispatching ready steps over NATS JetStream. (Runtime issue; not built yet.)
