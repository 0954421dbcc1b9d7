//! Where a pod's role comes from: the map file given (`--cluster-spec`, a kOps Cluster manifest
//! or the standalone map, read by [`crate::iam_map`]; or `--eks-config-map`), loaded as one
//! [`Map`] that answers "which role, audience, STS endpoint and token lifetime for
//! NAMESPACE/SERVICEACCOUNT". A kOps entry answers what kOps itself would write for it into the
//! EKS webhook's ConfigMap, so both sources wire a pod the same way.

use std::path::{Path, PathBuf};

use super::eks_config_map::{EksConfigMap, EksConfigMapError};
use crate::iam_map::{self, IamMap, IamMapError};

/// The map file and how to read it.
#[derive(Clone, Debug)]
pub enum MapSource {
    /// `--cluster-spec FILE`, with the account and partition of the roles kOps names.
    ClusterSpec {
        /// The kOps Cluster manifest or standalone map.
        path: PathBuf,
        /// `--account-id`.
        account_id: String,
        /// `--partition`.
        partition: String,
    },
    /// `--eks-config-map FILE`.
    EksConfigMap(PathBuf),
}

impl MapSource {
    /// The file, for the watcher and for messages.
    pub fn path(&self) -> &Path {
        match self {
            Self::ClusterSpec { path, .. } | Self::EksConfigMap(path) => path,
        }
    }

    /// Reads and validates the map.
    pub fn load(&self) -> Result<Map, MapError> {
        match self {
            Self::ClusterSpec {
                path,
                account_id,
                partition,
            } => Ok(Map::Kops {
                map: IamMap::load(path)?,
                account_id: account_id.clone(),
                partition: partition.clone(),
            }),
            Self::EksConfigMap(path) => Ok(Map::Eks(EksConfigMap::load(path)?)),
        }
    }
}

/// Why a map file was refused (each names the file and the entry).
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// `--cluster-spec`.
    #[error(transparent)]
    ClusterSpec(#[from] IamMapError),
    /// `--eks-config-map`.
    #[error(transparent)]
    EksConfigMap(#[from] EksConfigMapError),
}

/// What a map says about one ServiceAccount; unset fields fall back to the flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The role's ARN.
    pub role_arn: String,
    /// The token's audience.
    pub audience: Option<String>,
    /// Whether to point the SDK at the regional STS endpoint.
    pub regional_sts: Option<bool>,
    /// The token's lifetime in seconds.
    pub token_expiration: Option<u32>,
}

/// A loaded map.
#[derive(Clone, Debug)]
pub enum Map {
    /// From `--cluster-spec`: kOps's entries and the account their roles are in.
    Kops {
        /// The entries.
        map: IamMap,
        /// The roles' account.
        account_id: String,
        /// The roles' partition.
        partition: String,
    },
    /// From `--eks-config-map`.
    Eks(EksConfigMap),
    /// No map file: ServiceAccount annotations only.
    Empty,
}

impl Map {
    /// The role for `namespace`/`service_account`, if the map names one.
    pub fn lookup(&self, namespace: &str, service_account: &str) -> Option<Mapped> {
        match self {
            // What kOps writes into the EKS webhook's ConfigMap for the entry: its role, the
            // audience kOps registers with the OIDC provider, the regional STS endpoint.
            Self::Kops {
                map,
                account_id,
                partition,
            } => map.lookup(namespace, service_account).map(|e| Mapped {
                role_arn: e.role_arn(partition, account_id, map.cluster_name()),
                audience: Some(iam_map::DEFAULT_AUDIENCE.to_owned()),
                regional_sts: Some(true),
                token_expiration: None,
            }),
            Self::Eks(map) => map.lookup(namespace, service_account).map(|e| Mapped {
                role_arn: e.role_arn.clone(),
                audience: e.audience.clone(),
                regional_sts: e.regional_sts,
                token_expiration: e.token_expiration,
            }),
            Self::Empty => None,
        }
    }

    /// How many entries it has.
    pub fn len(&self) -> usize {
        match self {
            Self::Kops { map, .. } => map.entries().len(),
            Self::Eks(map) => map.entries().len(),
            Self::Empty => 0,
        }
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
