//! Compiles the contract protos with `protox` (a pure-Rust protobuf compiler), so building Herald needs no `protoc`
//! on the machine. The .proto files live in the repository's top-level `proto/` folder, shared with the Python SDK's
//! stub generator.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [root.join("flowmesh/v1/flowmesh.proto")];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `bytes` fields as `bytes::Bytes`: payloads are sliced out of the request buffer and handed to responses
        // without copying.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
