//! Compiles `tally/v1/*.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "tally/v1/ledger.proto",
        "tally/v1/audit.proto",
        "tally/v1/admin.proto",
        "tally/v1/metering.proto",
        "tally/v1/rating.proto",
        "tally/v1/billing.proto",
    ];
    let file_descriptors = protox::compile(files, ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC server reflection.
    std::fs::write(
        out_dir.join("tally_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure()
        // The packed batch and its results are read in place: as `Bytes`, the
        // request shares the buffer it was received in, and a client's retry
        // clones a reference count, not the batch.
        .bytes(".tally.v1.PackedTransactionsRequest.batch")
        .bytes(".tally.v1.PackedTransactionsResponse.results")
        .bytes(".tally.v1.PackedEventsRequest.batch")
        .bytes(".tally.v1.PackedEventsResponse.results")
        .compile_fds(file_descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}
