//! The gRPC contract of Tally: generated code for `proto/tally/v1/*.proto`.
//!
//! The `.proto` files are the contract; this crate only exposes what is generated
//! from them. Conversions to domain types live at the server's edge (`api`) and in
//! the client façade, never here.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tally.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tally_descriptor");
}
