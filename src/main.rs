//! The `isodose` command-line tool.

mod demo;
mod demo_proton;
mod plot;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isodose::BackendChoice;
use isodose::tg43::{Formalism, SeedCatalogue, dose_rate_per_u};

/// isodose: radiotherapy dose engine (TG-43 brachytherapy; proton PBS to come).
#[derive(Debug, Parser)]
#[command(name = "isodose", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute the built-in demo (phantom, seed implant) and write figures.
    Demo {
        /// Folder for the figures.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Compute backend: auto, cpu or gpu.
        #[arg(long, default_value = "auto")]
        backend: String,
    },
    /// List the TG-43 seed models shipped with isodose, or load a seed file.
    Seeds {
        /// A seed file (isodose-tg43-seed/1 JSON) to validate and summarise.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Demo { out, backend } => demo::run(&out, BackendChoice::parse(&backend)?),
        Command::Seeds { file } => {
            let models = match file {
                Some(path) => vec![isodose::tg43::SeedModel::from_json_file(path)?],
                None => SeedCatalogue::builtin().models().cloned().collect(),
            };
            let mut text = format!(
                "{:<24} {:>8} {:>7} {:>10} {:>6}  name\n",
                "key", "Λ", "L mm", "Ḋ(1cm,90°)", "φ_an"
            );
            for m in models {
                let d = dose_rate_per_u(&m, Formalism::Line, 10.0, 90.0)?;
                writeln!(
                    text,
                    "{:<24} {:>8.3} {:>7.2} {:>10.4} {:>6}  {}",
                    m.key(),
                    m.dose_rate_constant(),
                    m.active_length_mm(),
                    d,
                    if m.anisotropy_factor().is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    m.name()
                )?;
            }
            print_stdout(&text)
        }
    }
}

/// Writes `text` to standard output. A closed pipe (`isodose demo | head`)
/// ends the output quietly instead of panicking like `println!` would.
pub(crate) fn print_stdout(text: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
