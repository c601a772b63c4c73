mlops {
  name = "churn"
}

source "customers" {
  format = "parquet"
  path   = "data/customers.parquet"

  schema {
    customer_id = "string"
    tenure      = "int"
    plan        = "category"
    churned     = "bool"
  }
}

entity "customer" {
  join_keys = ["customer_id"]
}

feature_view "customer_profile" {
  source   = source.customers
  entities = [entity.customer]

  feature "tenure" {
    column = "tenure"
  }

  feature "plan" {
    column = "plan"
  }
}

training_job "churn" {
  features = [feature_view.customer_profile]
  label    = source.customers.columns.churned

  validation {
    split   = "time"
    holdout = 0.2
  }

  gate {
    metric = "auc"
    min    = 0.8
  }
}
