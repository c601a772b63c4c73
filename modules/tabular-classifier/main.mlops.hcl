# A tabular classifier: an XGBoost training job with a quality gate, served by an endpoint
# that rolls new versions out as a canary. Instantiate it with a `module` block.

variable "features" {
  description = "Feature views the model is trained on."
  type        = list(any)
}

variable "label" {
  description = "The label column: source.<name>.columns.<column>."
}

variable "objective" {
  type    = string
  default = "binary:logistic"
}

variable "max_depth" {
  type    = number
  default = 6

  validation {
    condition     = var.max_depth >= 1 && var.max_depth <= 16
    error_message = "max_depth must be between 1 and 16."
  }
}

variable "rounds" {
  type    = number
  default = 200
}

variable "min_auc" {
  description = "Gate: a model below this holdout AUC is never promoted."
  type        = number
  default     = 0.85
}

variable "replicas" {
  type    = number
  default = 2
}

variable "canary_steps" {
  type    = list(number)
  default = [10, 50, 100]
}

training_job "model" {
  features  = var.features
  label     = var.label
  algorithm = "xgboost"

  params = {
    objective             = var.objective
    max_depth             = var.max_depth
    eta                   = 0.1
    rounds                = var.rounds
    early_stopping_rounds = 20
    subsample             = 0.8
    seed                  = 7
  }

  validation {
    split   = "time"
    holdout = 0.2
  }

  gate {
    metric = "auc"
    min    = var.min_auc
  }

  resources {
    cpu    = 4
    memory = "8Gi"
  }
}

endpoint "api" {
  model    = training_job.model
  replicas = var.replicas
  timeout  = "2s"

  rollout {
    strategy = "canary"
    steps    = var.canary_steps
    interval = "10m"

    rollback {
      metric = "error_rate"
      above  = 0.02
    }
  }

  resources {
    cpu    = 1
    memory = "1Gi"
  }
}

output "job" {
  value = training_job.model
}

output "endpoint" {
  value = endpoint.api
}

output "url" {
  value = endpoint.api.url
}
