# A complete Terraform configuration managing the fraud-detection ML system with the mlops
# provider: the system as one resource (the directory fraud/), the production model and the
# ML-aware plan as data sources. See provider/docs/ for every resource type.

terraform {
  required_providers {
    mlops = {
      source  = "mlops/mlops"
      version = ">= 0.1.0"
    }
  }
}

variable "rounds" {
  description = "Boosting rounds of the fraud model (small for a quick example)."
  type        = number
  default     = 30
}

variable "max_depth" {
  description = "Tree depth of the fraud model: changing it trains a new model."
  type        = number
  default     = 4
}

variable "drift_threshold" {
  description = "PSI above which a feature counts as drifted, in (0, 1)."
  type        = number
  default     = 0.2
}

variable "serving_address" {
  description = "Where the local serving agent listens."
  type        = string
  default     = "127.0.0.1:8080"
}

provider "mlops" {
  # Where state is kept and where apply runs, as in an `mlops { }` block; these override the
  # directory's own settings.
  target_local {
    address = var.serving_address
  }
}

resource "mlops_system" "fraud" {
  dir = "${path.module}/fraud"

  variables = {
    rounds          = var.rounds
    max_depth       = var.max_depth
    drift_threshold = var.drift_threshold
  }
}

data "mlops_model" "fraud" {
  dir       = mlops_system.fraud.dir
  variables = mlops_system.fraud.variables
  job       = "module.fraud.training_job.model"

  depends_on = [mlops_system.fraud]
}

data "mlops_plan" "fraud" {
  dir       = mlops_system.fraud.dir
  variables = mlops_system.fraud.variables

  depends_on = [mlops_system.fraud]
}

output "model_version" {
  value = mlops_system.fraud.models["module.fraud.training_job.model"]
}

output "model_auc" {
  value = data.mlops_model.fraud.metrics["auc"]
}

output "endpoint_url" {
  value = mlops_system.fraud.endpoints["module.fraud.endpoint.api"]
}

output "pending_changes" {
  value = data.mlops_plan.fraud.has_changes
}
