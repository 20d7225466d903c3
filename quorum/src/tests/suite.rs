//! openraft's own storage test suite against `LogStore` and `MachineStore`.

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use openraft_rt::AsyncRuntime;
use tempfile::TempDir;

use super::Counter;
use crate::runtime::WeirRuntime;
use crate::{LogStore, MachineStore, TypeConfig};

/// Each test of the suite gets fresh stores in a fresh directory.
struct InTempDir;

impl StoreBuilder<TypeConfig, LogStore, MachineStore<Counter>, TempDir> for InTempDir {
    async fn build(&self) -> Result<(TempDir, LogStore, MachineStore<Counter>), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = LogStore::open(&dir.path().join("log")).expect("a new log");
        let machine = MachineStore::open(&dir.path().join("machine"), Counter::default()).expect("a new machine");
        Ok((dir, log, machine))
    }
}

#[test]
fn passes_openrafts_storage_suite() {
    let mut runtime = WeirRuntime::new(1);
    runtime.block_on(async { Suite::test_all(InTempDir).await }).expect("the storage suite passes");
}
