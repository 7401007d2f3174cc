//! The `herald` binary: parses flags, sets up logging and signals, and calls into `herald-server`.
//! Everything worth testing lives in the library crates.

mod bench;
mod client;
mod eventsbench;
mod identity;
mod natsbench;
mod relaybench;
mod serve;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a server allocating many small, short-lived buffers per request spends
/// measurably less time in malloc/free with it (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: streams, queues, KV, pub/sub and event delivery in one durable server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded storage, nothing else to install).
    Serve(serve::ServeArgs),
    /// Load-test Herald over gRPC (starts its own servers unless --target is given) and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Load-test a NATS server (Herald's NATS listener or nats-server) over the raw protocol.
    NatsBench(natsbench::NatsBenchArgs),
    /// Load-test a Pulsar Relay–compatible server (Herald's relay listener or pulsar-relay) over HTTP and WebSocket.
    RelayBench(relaybench::RelayBenchArgs),
    /// Load-test addressed events (EnSync gRPC): publish → deliver → ack against a Herald it starts itself.
    EventsBench(eventsbench::EventsBenchArgs),
    /// Identities for addressed events (EnSync): `herald identity create --name orders`.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Streams over gRPC: write (also bulk import from a file), read, tail.
    #[command(subcommand)]
    Stream(client::stream::StreamCommand),
    /// Queues over gRPC: enqueue, stats, dead-letter queue.
    #[command(subcommand)]
    Queue(client::queue::QueueCommand),
    /// KV stores over gRPC: get, set, delete, list.
    #[command(subcommand)]
    Kv(client::kv::KvCommand),
    /// Publish a message over the NATS protocol.
    Pub(client::nats::PubArgs),
    /// Subscribe over the NATS protocol and print messages.
    Sub(client::nats::SubArgs),
    /// Send a NATS request and print the reply.
    Request(client::nats::RequestArgs),
    /// The realtime relay over HTTP.
    #[command(subcommand)]
    Relay(client::relay::RelayCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Bench(args) => bench::main(args),
        Command::NatsBench(args) => natsbench::main(args),
        Command::RelayBench(args) => relaybench::main(args),
        Command::EventsBench(args) => eventsbench::main(args),
        Command::Identity(cmd) => identity::main(cmd),
        Command::Stream(cmd) => client::stream::main(cmd),
        Command::Queue(cmd) => client::queue::main(cmd),
        Command::Kv(cmd) => client::kv::main(cmd),
        Command::Pub(args) => client::nats::publish(args),
        Command::Sub(args) => client::nats::subscribe(args),
        Command::Request(args) => client::nats::request(args),
        Command::Relay(cmd) => client::relay::main(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable message with its causes (`{:#}`), not a debug dump with a backtrace.
            eprintln!("herald: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
