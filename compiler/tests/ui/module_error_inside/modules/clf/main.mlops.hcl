# A binary classifier and the endpoint that serves it.

variable "features" {
  type = list(any)
}

variable "label" {
  description = "source.<name>.columns.<column>"
}

variable "max_depth" {
  type    = number
  default = 6
}

variable "min_auc" {
  type    = number
  default = 0.8
}

training_job "model" {
  features = var.features
  label    = var.label

  params = {
    objective = "binary:logistic"
    max_depth = var.max_depth
    eta       = 0.1
    colsample_by_tree = 0.8
  }

  gate {
    metric = "auc"
    min    = var.min_auc
  }
}

endpoint "api" {
  model    = training_job.model
  replicas = 2
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
