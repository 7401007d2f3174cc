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
    // EnSync's service has an RPC named `Connect`, which would collide with the generated client's `connect`
    // constructor; Herald only serves it (load generators call it through `tonic::client::Grpc` directly).
    let ensync = root.join("ensync/ensync.proto");
    println!("cargo:rerun-if-changed={}", ensync.display());
    let fds = protox::compile([&ensync], [&root])?;
    tonic_prost_build::configure().build_client(false).build_server(true).compile_fds(fds)?;
    Ok(())
}
