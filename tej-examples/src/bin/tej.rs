//! `tej`: send files and messages over TEJ from the command line.
//!
//! This file only parses the command line and dispatches: each subcommand
//! is a module of [`tej_examples::cli`] holding its arguments and its
//! `exec`, as cargo keeps its commands in `src/bin/cargo/commands/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tej_examples::cli::{self, bench::BenchArgs, demo::DemoArgs, send::SendArgs, serve::ServeArgs};

/// Send files and messages over the TEJ protocol.
#[derive(Debug, Parser)]
#[command(name = "tej", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a server and a client on loopback, exchange a message, a ping
    /// and files (one large, streamed from disk), verify every byte by hash.
    Demo(DemoArgs),
    /// Accept connections and print every frame received; save files to
    /// --save-dir (streamed to disk) or hash and discard them. Runs until
    /// Ctrl-C, then finishes the frames in progress and exits.
    Serve(ServeArgs),
    /// Connect, send files (streamed from disk) and a message, print the
    /// replies and a summary; exits non-zero on any failure.
    Send(SendArgs),
    /// Measure every adapter on loopback against baselines run in the same
    /// process: one large file against plain TCP, many small frames against
    /// a minimal length-prefixed protocol, and round trips.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo(args) => cli::demo::exec(&args),
        Command::Serve(args) => cli::serve::exec(&args),
        Command::Send(args) => cli::send::exec(&args),
        Command::Bench(args) => cli::bench::exec(&args),
    }
}
