/** The Open Inference Protocol (KServe v2) request body, as the JSON and binary decoders share it. */

export interface V2RequestTensor {
  name: string
  shape: number[]
  datatype: string
  /** JSON data; absent when the tensor travels as binary data (`parameters.binary_data_size`) */
  data?: unknown
  parameters?: { binary_data_size?: number; [k: string]: unknown }
}

/** A requested output: only these are answered, `binary_data` ones as binary data. */
export interface V2RequestOutput {
  name: string
  parameters?: { binary_data?: boolean; [k: string]: unknown }
}

export interface V2InferRequest {
  id?: string
  inputs: V2RequestTensor[]
  outputs?: V2RequestOutput[]
  parameters?: { binary_data_output?: boolean; [k: string]: unknown }
}
