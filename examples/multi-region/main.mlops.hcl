# Multi-region churn scoring: each region keeps its customers' data in its own PostgreSQL
# database, trains its own model on it, and serves it from its own endpoint. Every regional
# endpoint is watched for quality and for drift, and retrained and promoted on its own. Deployed
# as Kubernetes manifests that run the mlops runtime image.

mlops {
  name = "multi-region-churn"

  backend "postgres" {
    conn_str_env = "MLOPS_STATE_DB"
    schema       = "mlops_churn"
  }

  target "kubernetes" {
    namespace       = "churn-scoring"
    image           = local.runtime_image
    storage_class   = "standard-rwx"
    storage_size    = "50Gi"
    service_monitor = true
  }
}

variable "runtime_version" {
  description = "Version of the mlops runtime image every workload runs (a release, never `latest`)."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = length(split(".", var.runtime_version)) == 3
    error_message = "runtime_version must be a release version such as 0.1.0."
  }
}

variable "regions" {
  description = "Regions the system runs in: serving replicas, the database holding the region's data, and the hour (UTC) of its scheduled retrain."
  type = map(object({
    replicas     = number
    database_env = string
    retrain_hour = number
  }))
  default = {
    eu-west = {
      replicas     = 3
      database_env = "CHURN_DB_EU_WEST"
      retrain_hour = 2
    }
    us-east = {
      replicas     = 4
      database_env = "CHURN_DB_US_EAST"
      retrain_hour = 7
    }
    ap-south = {
      replicas     = 2
      database_env = "CHURN_DB_AP_SOUTH"
      retrain_hour = 20
    }
  }

  validation {
    condition     = length(var.regions) > 0
    error_message = "regions must list at least one region."
  }

  validation {
    condition     = length([for name, r in var.regions : name if r.replicas < 1 || r.retrain_hour < 0 || r.retrain_hour > 23]) == 0
    error_message = "every region needs replicas >= 1 and a retrain_hour from 0 to 23."
  }
}

variable "min_auc" {
  description = "Gate and alert level: holdout (and live) AUC below this is not acceptable."
  type        = number
  default     = 0.75

  validation {
    condition     = var.min_auc > 0.5 && var.min_auc < 1
    error_message = "min_auc must be in (0.5, 1): 0.5 is a coin toss."
  }
}

locals {
  runtime_image = format("ghcr.io/example/mlops-runtime:%s", var.runtime_version)

  # Region settings plus what is derived from the region's name.
  regions = {
    for name, r in var.regions : name => merge(r, {
      token_env  = format("SCORING_TOKEN_%s", upper(replace(name, "-", "_")))
      prometheus = format("http://prometheus.%s.internal:9090", name)
      schedule   = format("0 %d * * *", r.retrain_hour)
    })
  }

  drift_features = ["tenure_days", "sessions_mean_7d", "minutes_sum_7d", "payment_failures_30d", "prediction"]
}
