fn main() {
    // Only the Node addon needs napi's link setup; plain `cargo test` builds the core alone.
    #[cfg(feature = "node")]
    napi_build::setup();
}
