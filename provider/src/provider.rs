//! The `tfplugin6.Provider` gRPC service. In: Terraform's requests (values as MessagePack).
//! Out: schemas, diagnostics and new values. Each call decodes its values with the schema of
//! its type, hands the work to [`system`], [`kinds`] or [`data`] on a blocking thread (they
//! train models and wait for processes), and encodes the answer.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tonic::{Request, Response, Status};

use crate::cty::{self, Val};
use crate::data;
use crate::diag::{self, Diag, Step};
use crate::kinds;
use crate::proto::tfplugin6 as pb;
use crate::proto::tfplugin6::provider_server::Provider;
use crate::settings::Settings;
use crate::system;
use crate::tfschema::{self, TfBlock};

/// The provider: its schemas and its configuration once Terraform sent it.
pub struct MlopsProvider {
    resources: Arc<BTreeMap<String, TfBlock>>,
    data_sources: Arc<BTreeMap<String, TfBlock>>,
    settings: Arc<RwLock<Settings>>,
    /// What this process has seen of the run, for the per-kind resources.
    context: Arc<kinds::Context>,
    stop: Arc<Notify>,
}

/// Every resource type: `mlops_system` and the per-kind types (`mlops_source` …).
pub fn resource_schemas() -> BTreeMap<String, TfBlock> {
    let mut all = kinds::schemas();
    all.insert(system::TYPE.to_string(), system::schema());
    all
}

impl MlopsProvider {
    /// A provider not configured yet.
    pub fn new(stop: Arc<Notify>) -> MlopsProvider {
        MlopsProvider {
            resources: Arc::new(resource_schemas()),
            data_sources: Arc::new(data::schemas()),
            settings: Arc::new(RwLock::new(Settings::default())),
            context: Arc::new(kinds::Context::default()),
            stop,
        }
    }

    fn settings(&self) -> Settings {
        self.settings.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn resource(&self, name: &str) -> Result<TfBlock, Status> {
        self.resources.get(name).cloned().ok_or_else(|| Status::not_found(format!("no resource type {name}")))
    }
}

fn decode(block: &TfBlock, v: &Option<pb::DynamicValue>) -> Result<Val, Status> {
    let Some(v) = v else { return Ok(Val::Null) };
    if !v.msgpack.is_empty() {
        return cty::decode(&block.ty(), &v.msgpack).map_err(Status::invalid_argument);
    }
    if !v.json.is_empty() {
        let j: serde_json::Value =
            serde_json::from_slice(&v.json).map_err(|e| Status::invalid_argument(e.to_string()))?;
        return Val::from_json(&block.ty(), &j).map_err(Status::invalid_argument);
    }
    Ok(Val::Null)
}

fn encode(block: &TfBlock, v: &Val) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue { msgpack: cty::encode(&block.ty(), v), json: Vec::new() })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(format!("the provider's worker failed: {e}")))
}

#[tonic::async_trait]
impl Provider for MlopsProvider {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(pb::ServerCapabilities {
                plan_destroy: false,
                get_provider_schema_optional: false,
            }),
            diagnostics: Vec::new(),
            data_sources: self
                .data_sources
                .keys()
                .map(|k| pb::get_metadata::DataSourceMetadata { type_name: k.clone() })
                .collect(),
            resources: self
                .resources
                .keys()
                .map(|k| pb::get_metadata::ResourceMetadata { type_name: k.clone() })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(tfschema::provider().to_schema()),
            resource_schemas: self.resources.iter().map(|(k, b)| (k.clone(), b.to_schema())).collect(),
            data_source_schemas: self.data_sources.iter().map(|(k, b)| (k.clone(), b.to_schema())).collect(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(pb::ServerCapabilities {
                plan_destroy: false,
                get_provider_schema_optional: false,
            }),
        }))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let config = decode(&tfschema::provider(), &req.get_ref().config)?;
        let diags = if config.is_unknown() {
            Vec::new()
        } else {
            blocking(move || Settings::from_config(&config).err().unwrap_or_default()).await?
        };
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics: diag::to_proto(&diags) }))
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        // The directory is compiled (and its diagnostics reported) at plan, when variables are known.
        self.resource(&req.get_ref().type_name)?;
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics: Vec::new() }))
    }

    async fn validate_data_resource_config(
        &self,
        _: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: Vec::new() }))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let r = req.get_ref();
        let block = self.resource(&r.type_name)?;
        let json = r.raw_state.as_ref().map(|s| s.json.clone()).unwrap_or_default();
        let v = if json.is_empty() {
            Val::Null
        } else {
            let j: serde_json::Value =
                serde_json::from_slice(&json).map_err(|e| Status::invalid_argument(e.to_string()))?;
            Val::from_json(&block.ty(), &j).map_err(Status::invalid_argument)?
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: encode(&block, &v),
            diagnostics: Vec::new(),
        }))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let config = decode(&tfschema::provider(), &req.get_ref().config)?;
        let result = blocking(move || Settings::from_config(&config)).await?;
        let diags = match result {
            Ok(s) => {
                if let Ok(mut w) = self.settings.write() {
                    *w = s;
                }
                Vec::new()
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::configure_provider::Response { diagnostics: diag::to_proto(&diags) }))
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let r = req.into_inner();
        let block = self.resource(&r.type_name)?;
        let current = decode(&block, &r.current_state)?;
        let settings = self.settings();
        let context = self.context.clone();
        let kind = kinds::kind_of(&r.type_name);
        let (new, diags) = blocking(move || match kind {
            Some(kind) => kinds::read(kind, &current, &settings, &context),
            None => system::read(&current, &settings),
        })
        .await?;
        Ok(Response::new(pb::read_resource::Response {
            new_state: encode(&block, &new.unwrap_or(Val::Null)),
            diagnostics: diag::to_proto(&diags),
            private: r.private,
        }))
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let r = req.into_inner();
        let block = self.resource(&r.type_name)?;
        let prior = decode(&block, &r.prior_state)?;
        let proposed = decode(&block, &r.proposed_new_state)?;
        if proposed.is_null() {
            // Destroy: nothing to plan beyond Terraform's own.
            return Ok(Response::new(pb::plan_resource_change::Response {
                planned_state: encode(&block, &Val::Null),
                requires_replace: Vec::new(),
                planned_private: r.prior_private,
                diagnostics: Vec::new(),
                legacy_type_system: false,
            }));
        }
        let settings = self.settings();
        if let Some(kind) = kinds::kind_of(&r.type_name) {
            let (context, b) = (self.context.clone(), block.clone());
            let prior_private = r.prior_private.clone();
            let planned =
                blocking(move || kinds::plan_change(kind, &b, &prior, &proposed, &prior_private, &settings, &context))
                    .await?;
            return Ok(Response::new(pb::plan_resource_change::Response {
                planned_state: encode(&block, &planned.value),
                requires_replace: planned.requires_replace.iter().map(|p| attribute_path(p)).collect(),
                planned_private: planned.private,
                diagnostics: diag::to_proto(&planned.diags),
                legacy_type_system: false,
            }));
        }
        let (planned, diags) = blocking(move || system::plan_change(&prior, &proposed, &settings)).await?;
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: encode(&block, &planned),
            // mlops replaces models inside the system; the system itself is updated in place.
            requires_replace: Vec::new(),
            planned_private: r.prior_private,
            diagnostics: diag::to_proto(&diags),
            legacy_type_system: false,
        }))
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let r = req.into_inner();
        let block = self.resource(&r.type_name)?;
        let prior = decode(&block, &r.prior_state)?;
        let planned = decode(&block, &r.planned_state)?;
        let settings = self.settings();
        if let Some(kind) = kinds::kind_of(&r.type_name) {
            let context = self.context.clone();
            let private = r.planned_private.clone();
            let (new, private, diags) = blocking(move || {
                if planned.is_null() {
                    (Val::Null, Vec::new(), kinds::destroy(kind, &prior, &private, &settings, &context))
                } else {
                    kinds::apply_change(kind, &prior, &planned, &private, &settings, &context)
                }
            })
            .await?;
            let new = if new.is_null() && diags.iter().any(|d| d.error) {
                prior_or_null(&block, &r.prior_state)
            } else {
                new
            };
            return Ok(Response::new(pb::apply_resource_change::Response {
                new_state: encode(&block, &new),
                private,
                diagnostics: diag::to_proto(&diags),
                legacy_type_system: false,
            }));
        }
        let (new, diags) = blocking(move || {
            if planned.is_null() {
                (Val::Null, system::destroy(&prior, &settings))
            } else {
                system::apply_change(&planned, &settings)
            }
        })
        .await?;
        // A failed destroy keeps the resource in Terraform's state.
        let new =
            if new.is_null() && diags.iter().any(|d| d.error) { prior_or_null(&block, &r.prior_state) } else { new };
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state: encode(&block, &new),
            private: r.planned_private,
            diagnostics: diag::to_proto(&diags),
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let r = req.into_inner();
        let block = self.resource(&r.type_name)?;
        let settings = self.settings();
        let (id, type_name) = (r.id.clone(), r.type_name.clone());
        let (state, diags): (Option<(Val, Vec<u8>)>, Vec<Diag>) = blocking(move || match kinds::kind_of(&type_name) {
            Some(kind) => kinds::import(kind, &id, &settings),
            None => (Some((system::import(&id), Vec::new())), Vec::new()),
        })
        .await?;
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: state
                .map(|(s, private)| pb::import_resource_state::ImportedResource {
                    type_name: r.type_name.clone(),
                    state: encode(&block, &s),
                    private,
                })
                .into_iter()
                .collect(),
            diagnostics: diag::to_proto(&diags),
        }))
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let r = req.into_inner();
        let block =
            self.data_sources.get(&r.type_name).cloned().ok_or_else(|| Status::not_found(r.type_name.clone()))?;
        let config = decode(&block, &r.config)?;
        let settings = self.settings();
        let type_name = r.type_name.clone();
        let (v, diags) = blocking(move || data::read(&type_name, &config, &settings)).await?;
        Ok(Response::new(pb::read_data_source::Response {
            state: encode(&block, &v),
            diagnostics: diag::to_proto(&diags),
        }))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        self.stop.notify_one();
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}

fn prior_or_null(block: &TfBlock, prior: &Option<pb::DynamicValue>) -> Val {
    decode(block, prior).unwrap_or(Val::Null)
}

fn attribute_path(path: &[Step]) -> pb::AttributePath {
    Diag::error("").at(path.to_vec()).to_proto().attribute.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_converts() {
        for (name, b) in resource_schemas() {
            let s = b.to_schema();
            assert!(s.block.is_some(), "{name}");
        }
        let _ = tfschema::provider().to_schema();
    }

    #[test]
    fn per_kind_schemas_are_derived_from_the_language() {
        let job = tfschema::kind_resource("training_job").unwrap();
        let params = job.attrs.iter().find(|a| a.name == "params").unwrap();
        assert!(params.replace && params.ty == crate::cty::Ty::Dynamic);
        assert!(job.attrs.iter().any(|a| a.name == "version" && a.computed));
        assert!(job.blocks.iter().any(|b| b.name == "gate"));
        let source = tfschema::kind_resource("source").unwrap();
        assert!(source.attrs.iter().any(|a| a.name == "schema" && a.required), "open blocks become attributes");
        let view = tfschema::kind_resource("feature_view").unwrap();
        let feature = view.blocks.iter().find(|b| b.name == "feature").unwrap();
        assert!(feature.block.attrs.iter().any(|a| a.name == "name" && a.required), "labels become attributes");
        assert_eq!(tfschema::kinds().len(), 7);
    }
}
