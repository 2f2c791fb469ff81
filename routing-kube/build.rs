//! `kube_real_cluster` is set when KUBECONFIG is: the real-cluster test then runs
//! (and fails loudly if the cluster is unreachable); otherwise it reports ignored.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(kube_real_cluster)");
    println!("cargo::rerun-if-env-changed=KUBECONFIG");
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=kube_real_cluster");
    }
}
