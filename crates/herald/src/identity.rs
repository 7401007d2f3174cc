//! `herald identity create`: a new identity for addressed events (compat/ensync.md §1.2).
//!
//! Generates an Ed25519 keypair and an access key, prints the secret key and the access key once (Herald keeps
//! neither: the configuration holds the public key and the access key's SHA-256), and prints the
//! `[[events.identities]]` entry to add to herald.toml, or appends it with `--append`.

use anyhow::Context;
use base64::Engine as _;
use clap::{Args, Subcommand};
use sha2::Digest as _;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Generate a keypair and an access key; print them once with the config entry to add.
    Create(CreateArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// A label for logs and the dashboard (letters, digits, `-`, `_`, `.`).
    #[arg(long, default_value = "app")]
    name: String,
    /// Append the `[[events.identities]]` entry to this configuration file (it is created if missing).
    #[arg(long)]
    append: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn main(cmd: IdentityCommand) -> anyhow::Result<()> {
    match cmd {
        IdentityCommand::Create(args) => create(args),
    }
}

/// 32 bytes from the OS's random source (through the same generator Herald uses for ids).
fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(&herald_types::id::new_id_bytes());
    b[16..].copy_from_slice(&herald_types::id::new_id_bytes());
    b
}

struct Identity {
    name: String,
    public_key: String,
    secret_key: String,
    access_key: String,
    access_key_sha256: String,
}

fn generate(name: &str) -> Identity {
    let signing = ed25519_dalek::SigningKey::from_bytes(&random32());
    let b64 = base64::engine::general_purpose::STANDARD;
    // The 64-byte form the EnSync SDKs take as `appSecretKey`: seed followed by public key (§5.1).
    let secret = signing.to_keypair_bytes();
    let access_key = format!("hak_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random32()));
    Identity {
        name: name.to_owned(),
        public_key: b64.encode(signing.verifying_key().as_bytes()),
        secret_key: b64.encode(secret),
        access_key_sha256: hex::encode(sha2::Sha256::digest(access_key.as_bytes())),
        access_key,
    }
}

fn entry(id: &Identity) -> String {
    format!(
        "[[events.identities]]\nname = \"{}\"\npublic_key = \"{}\"\naccess_key_sha256 = \"{}\"\n",
        id.name, id.public_key, id.access_key_sha256
    )
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    if args.name.is_empty() || !args.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        anyhow::bail!("--name: use letters, digits, '-', '_' and '.' only");
    }
    let id = generate(&args.name);
    if let Some(path) = &args.append {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        write!(f, "\n{}", entry(&id)).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let v = serde_json::json!({
            "name": id.name,
            "public_key": id.public_key,
            "secret_key": id.secret_key,
            "access_key": id.access_key,
            "access_key_sha256": id.access_key_sha256,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "Identity {:?}. The access key and the secret key are shown only now; Herald does not keep them.\n",
        id.name
    );
    println!("access key   {}", id.access_key);
    println!(
        "secret key   {}   (the application's appSecretKey; it decrypts events sent to this identity)",
        id.secret_key
    );
    println!("public key   {}   (the identity's address: publishers put it in `recipients`)\n", id.public_key);
    match &args.append {
        Some(path) => println!("Added to {} (restart Herald to load it):\n\n{}", path.display(), entry(&id)),
        None => println!("Add to herald.toml and restart Herald:\n\n{}", entry(&id)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identities_are_consistent() {
        let id = generate("orders");
        let b64 = base64::engine::general_purpose::STANDARD;
        let secret = b64.decode(&id.secret_key).unwrap();
        let public = b64.decode(&id.public_key).unwrap();
        assert_eq!((secret.len(), public.len()), (64, 32));
        assert_eq!(&secret[32..], &public[..], "the secret key is seed ‖ public key");
        let seed: [u8; 32] = secret[..32].try_into().unwrap();
        assert_eq!(ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().as_bytes(), &public[..]);
        assert_eq!(id.access_key_sha256, hex::encode(sha2::Sha256::digest(id.access_key.as_bytes())));
        assert_ne!(generate("x").access_key, id.access_key);
        // The entry is valid configuration that Herald accepts.
        let cfg: herald_server::config::Config = toml::from_str(&entry(&id)).unwrap();
        let v = cfg.validate().unwrap();
        assert_eq!(v.events.identities.len(), 1);
        assert_eq!(v.events.identities[0].access_key_sha256, herald_engine::events::access_key_digest(&id.access_key));
    }
}
