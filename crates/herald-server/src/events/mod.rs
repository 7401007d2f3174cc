pub mod settings;
pub mod ws;
pub mod ws_codec;
