source "sensor_readings" {
  format      = "csv"
  path        = "data/sensor_readings.csv"
  timestamp   = "event_time"
  description = "Readings every ~3 hours per machine, with the remaining useful life known afterwards."

  schema {
    reading_id          = "string"
    machine_id          = "string"
    machine_type        = "category"
    temperature         = "float"
    vibration           = "float"
    pressure            = "float"
    rpm                 = "float"
    load                = "float"
    hours_since_service = "float"
    rul_hours           = "float"
    event_time          = "timestamp"
  }
}

source "rul_feedback" {
  format      = "csv"
  path        = "data/rul_feedback.csv"
  timestamp   = "recorded_at"
  description = "Delayed ground truth: the actual remaining life of scored readings, known once the machine failed."

  schema {
    prediction_id    = "string"
    actual_rul_hours = "float"
    recorded_at      = "timestamp"
  }
}

entity "machine" {
  join_keys   = ["machine_id"]
  description = "One machine of the fleet (pump, compressor or turbine)."
}

feature_view "machine_health" {
  source   = source.sensor_readings
  entities = [entity.machine]
  ttl      = "3d"

  feature "temperature" {
    column = "temperature"
  }

  feature "vibration" {
    column = "vibration"
  }

  feature "load" {
    column = "load"
  }

  feature "hours_since_service" {
    column = "hours_since_service"
  }

  feature "temperature_mean_24h" {
    column    = "temperature"
    aggregate = "mean"
    window    = "24h"
  }

  feature "vibration_max_24h" {
    column    = "vibration"
    aggregate = "max"
    window    = "24h"
  }

  feature "vibration_stddev_24h" {
    column    = "vibration"
    aggregate = "stddev"
    window    = "24h"
  }

  feature "vibration_mean_72h" {
    column    = "vibration"
    aggregate = "mean"
    window    = "72h"
  }

  feature "pressure_mean_6h" {
    column    = "pressure"
    aggregate = "mean"
    window    = "6h"
  }

  feature "vibration_per_krpm" {
    expression  = "vibration / (rpm / 1000)"
    description = "Vibration normalised by shaft speed: bearings wear shows up at any speed."
  }
}
